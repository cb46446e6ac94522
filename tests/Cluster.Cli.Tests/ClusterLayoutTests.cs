using Cluster.Cli.Commands;
using Cluster.Cli.Supervision;
using Cluster.Engine.Cache;

namespace Cluster.Cli.Tests;

/// <summary>How `cluster up` and `cluster demo` read their node counts and the settings they pass to every attention node.</summary>
public sealed class ClusterLayoutTests : IDisposable
{
    private readonly string _model = Directory.CreateTempSubdirectory("cluster-cli-layout-").FullName;

    public ClusterLayoutTests() => File.WriteAllText(Path.Combine(_model, "config.json"), "{}");

    public void Dispose() => Directory.Delete(_model, recursive: true);

    private ClusterLayout Parse(string options)
    {
        var args = new CliArgs(["--model", _model, .. options.Split(' ', StringSplitOptions.RemoveEmptyEntries)]);
        ClusterLayout layout = UpCommand.ParseLayout(args, CancellationToken.None);
        args.RejectUnknown();
        return layout;
    }

    [Theory]
    [InlineData("", 1, 0, 0)]
    [InlineData("--attention-nodes 3", 3, 0, 0)]
    [InlineData("--prefill-nodes 1 --decode-nodes 2", 0, 1, 2)]
    [InlineData("--prefill-nodes 2 --decode-nodes 1 --attention-nodes 1", 1, 2, 1)]
    [InlineData("--prefill-nodes 1 --decode-nodes 1 --attention-nodes 0", 0, 1, 1)]
    public void Counts_nodes_of_each_role(string options, int both, int prefill, int decode)
    {
        ClusterLayout layout = Parse(options);
        Assert.Equal((both, prefill, decode), (layout.AttentionNodes, layout.PrefillNodes, layout.DecodeNodes));
    }

    [Fact]
    public void Node_settings_are_passed_on_only_when_given()
    {
        ClusterLayout defaults = Parse("");
        Assert.Empty(defaults.NodeSettings.ToArgs());
        Assert.Null(defaults.DefaultMaxTokens);

        ClusterLayout layout = Parse("--prefill-chunk 128 --kv-cache-bytes 256MiB --kv-block-size 16 --kv-cache-dtype f32 --no-prefix-cache --micro-batch-overlap --default-max-tokens 100");
        Assert.Equal(new AttentionNodeSettings(128, 256L << 20, 16, LatentFormat.F32, true, true), layout.NodeSettings);
        Assert.Equal(
            ["--prefill-chunk", "128", "--kv-cache-bytes", "268435456", "--kv-block-size", "16", "--kv-cache-dtype", "f32", "--no-prefix-cache", "--micro-batch-overlap"],
            layout.NodeSettings.ToArgs());
        Assert.Equal(100, layout.DefaultMaxTokens);
    }

    [Theory]
    [InlineData("--prefill-nodes 1", "--prefill-nodes and --decode-nodes go together")]
    [InlineData("--decode-nodes 2", "--prefill-nodes and --decode-nodes go together")]
    [InlineData("--prefill-nodes 0 --decode-nodes 1", "--prefill-nodes must be between 1 and 64 (got 0)")]
    [InlineData("--attention-nodes 0", "--attention-nodes must be between 1 and 64 (got 0)")]
    [InlineData("--kv-cache-bytes 1GB", "--kv-cache-bytes must be a size: bytes, or a number with K, M, G, T, KiB, MiB, GiB or TiB (got '1GB')")]
    [InlineData("--kv-cache-bytes 0", "--kv-cache-bytes must be between 1 and")]
    [InlineData("--kv-cache-dtype fp16", "--kv-cache-dtype must be bf16 or f32 (got 'fp16')")]
    [InlineData("--prefill-chunk 0", "--prefill-chunk must be between 1 and")]
    [InlineData("--kv-block-size x", "--kv-block-size must be an integer (got 'x')")]
    [InlineData("--default-max-tokens 0", "--default-max-tokens must be between 1 and")]
    public void Bad_values_are_named(string options, string message)
    {
        var e = Assert.Throws<CliException>(() => Parse(options));
        Assert.StartsWith(message, e.Message);
    }
}
