using System.Runtime.InteropServices;
using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Model;

namespace Cluster.Cli.Tests;

public sealed class LogitsCommandTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("cluster-cli-test-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Tiny(string weights = "bf16")
    {
        string dir = Path.Combine(_root, "tiny-" + weights);
        var r = ClusterProcess.Run("model", "init", "--preset", "tiny", "--out", dir, "--weights", weights);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return dir;
    }

    private static float[] ReadFloats(string path) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(path)).ToArray();

    [Theory]
    [InlineData("bf16")]
    [InlineData("fp8")]
    public void Writes_every_positions_logits_and_decode_mode_agrees(string weights)
    {
        string dir = Tiny(weights), prefill = Path.Combine(_root, "p.bin"), decode = Path.Combine(_root, "d.bin");
        int[] tokens = [0, 15, 27, 1023, 4];
        var r = ClusterProcess.Run("logits", "--model", dir, "--tokens", string.Join(',', tokens), "--out", prefill);
        Assert.True(r.ExitCode == 0, r.Stderr);
        r = ClusterProcess.Run("logits", "--model", dir, "--tokens", string.Join(',', tokens), "--out", decode, "--mode", "decode");
        Assert.True(r.ExitCode == 0, r.Stderr);

        // The file is the engine's own prefill logits, float32 little-endian [tokens, vocab], nothing else.
        using var checkpoint = Checkpoint.Open(dir);
        var model = Transformer.Load(checkpoint.Config, checkpoint);
        var expected = new float[tokens.Length * checkpoint.Config.VocabSize];
        model.Prefill(tokens, new SequenceCache(checkpoint.Config), AttentionPath.Naive, expected);
        float[] a = ReadFloats(prefill), b = ReadFloats(decode);
        Assert.Equal(expected, a);
        double diff = 0, scale = 0;
        for (int i = 0; i < a.Length; i++) { diff = Math.Max(diff, Math.Abs(a[i] - b[i])); scale = Math.Max(scale, Math.Abs(a[i])); }
        Assert.InRange(diff / scale, 0, 1e-4);
    }

    [Theory]
    [InlineData("0,1024", "token id 1024 out of range 0..1023")]
    [InlineData("", "--tokens is empty")]
    [InlineData("3,x", "--tokens: 'x' is not a token id")]
    [InlineData("-1", "--tokens: '-1' is not a token id")]
    public void Bad_tokens_are_one_line_errors(string tokens, string message)
    {
        string dir = Tiny();
        var r = ClusterProcess.Run("logits", "--model", dir, "--tokens", tokens, "--out", Path.Combine(_root, "x.bin"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(File.Exists(Path.Combine(_root, "x.bin")));
    }

    [Fact]
    public void Missing_model_and_bad_mode_are_one_line_errors()
    {
        var r = ClusterProcess.Run("logits", "--model", Path.Combine(_root, "none"), "--tokens", "1", "--out", Path.Combine(_root, "x.bin"));
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("model directory not found", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        r = ClusterProcess.Run("logits", "--model", Tiny(), "--tokens", "1", "--out", Path.Combine(_root, "x.bin"), "--mode", "fast");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--mode must be prefill or decode (got 'fast')", r.Stderr);
    }
}
