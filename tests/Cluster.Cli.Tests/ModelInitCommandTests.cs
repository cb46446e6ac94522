using System.Security.Cryptography;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Cli.Tests;

public sealed class ModelInitCommandTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("cluster-cli-test-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static string Hash(string dir)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (string f in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(f)));
            sha.AppendData(File.ReadAllBytes(f));
        }
        return Convert.ToHexString(sha.GetHashAndReset());
    }

    [Fact]
    public void Writes_a_loadable_fp8_checkpoint_with_tokenizer_files_deterministically()
    {
        string a = Path.Combine(_root, "a"), b = Path.Combine(_root, "b");
        var r = ClusterProcess.Run("model", "init", "--preset", "tiny", "--out", a, "--seed", "11", "--weights", "fp8");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("preset tiny, seed 11, fp8", r.Stdout);
        foreach (string f in new[] { "config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(a, f)), f);
        Assert.Equal(File.ReadAllBytes(Path.Combine(ClusterProcess.RepoRoot, "node_modules", "@lenml", "tokenizer-deepseek_v3", "models", "tokenizer.json")),
            File.ReadAllBytes(Path.Combine(a, "tokenizer.json")));

        using (var ck = Checkpoint.Open(a))
        {
            var expected = SyntheticModel.CreateWeights(SyntheticPresets.Tiny, 11, DType.F8E4M3);
            Assert.Equal([128, 128], ck.Config.Fp8BlockSize!);
            foreach (string name in ck.Names)
                Assert.True(ck.Get(name).Bytes.SequenceEqual(expected.Get(name).Bytes), name);
            Assert.Equal(DType.F8E4M3, ck.Get("model.layers.1.mlp.experts.3.down_proj.weight").DType);
            Assert.Equal(DType.BF16, ck.Get("model.embed_tokens.weight").DType);
        }

        Assert.Equal(0, ClusterProcess.Run("model", "init", "--preset", "tiny", "--out", b, "--seed", "11", "--weights", "fp8").ExitCode);
        Assert.Equal(Hash(a), Hash(b));
        Assert.Equal(0, ClusterProcess.Run("model", "init", "--preset", "tiny", "--out", b, "--seed", "12", "--weights", "fp8", "--force").ExitCode);
        Assert.NotEqual(Hash(a), Hash(b));
    }

    [Fact]
    public void Expert_skew_writes_the_calibrated_router_biases_and_nothing_else_differs()
    {
        string dir = Path.Combine(_root, "skewed");
        var r = ClusterProcess.Run("model", "init", "--preset", "tiny", "--out", dir, "--seed", "4", "--expert-skew", "1.2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("preset tiny, seed 4, bf16, expert skew 1.2", r.Stdout);
        var expected = SyntheticModel.CreateWeights(SyntheticPresets.Tiny, 4, DType.BF16, expertSkew: 1.2);
        var plain = SyntheticModel.CreateWeights(SyntheticPresets.Tiny, 4, DType.BF16);
        using var ck = Checkpoint.Open(dir);
        foreach (string name in ck.Names)
        {
            Assert.True(ck.Get(name).Bytes.SequenceEqual(expected.Get(name).Bytes), name);
            Assert.Equal(!name.EndsWith("e_score_correction_bias"), ck.Get(name).Bytes.SequenceEqual(plain.Get(name).Bytes));
        }
    }

    [Fact]
    public void Refuses_a_non_empty_directory_without_force()
    {
        string dir = Path.Combine(_root, "busy");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "keep.txt"), "x");
        var r = ClusterProcess.Run("model", "init", "--preset", "tiny", "--out", dir);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"cluster model init: {dir} is not empty (use --force to overwrite)", r.Stderr.Trim());
        Assert.False(File.Exists(Path.Combine(dir, "config.json")));
    }

    [Theory]
    [InlineData("--preset huge", "cluster model init: unknown preset 'huge' (expected tiny, small, bench)")]
    [InlineData("--preset tiny --weights int4", "cluster model init: --weights must be bf16 or fp8 (got 'int4')")]
    [InlineData("--preset tiny --seed -1", "cluster model init: --seed must be between 0 and 2147483647 (got -1)")]
    [InlineData("--preset tiny --expert-skew -1", "cluster model init: --expert-skew must be between 0 and 4 (got -1)")]
    [InlineData("--preset tiny --shards 3", "cluster model init: unknown option --shards")]
    public void Bad_options_are_one_line_errors(string options, string message)
    {
        var r = ClusterProcess.Run(["model", "init", "--out", Path.Combine(_root, "x"), .. options.Split(' ')]);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal(message, r.Stderr.Trim());
    }
}
