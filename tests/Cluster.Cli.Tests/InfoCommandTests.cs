namespace Cluster.Cli.Tests;

public sealed class InfoCommandTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("cluster-cli-test-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void DeepSeek_v3_config_alone()
    {
        string dir = Path.Combine(_root, "dsv3");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(ClusterProcess.RepoRoot, "tests", "Cluster.Engine.Tests", "Config", "Fixtures", "deepseek-v3-config.json"), Path.Combine(dir, "config.json"));
        var r = ClusterProcess.Run("info", "--model", dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("parameters   671.0 B total", r.Stdout);
        Assert.Contains("684.5 B with the 1 MTP layer(s)", r.Stdout);
        Assert.Contains("active       37.6 B per token", r.Stdout);
        Assert.Contains("KV cache     70,272 bytes per token with MLA", r.Stdout);
        Assert.Contains("multi-head attention would need 4,997,120", r.Stdout);
        Assert.Contains("per expert   44,040,192 parameters, 44,050,944 bytes as F8_E4M3 with block scales (from config.json)", r.Stdout);
    }

    [Fact]
    public void Reads_the_stored_dtype_of_a_checkpoint()
    {
        string dir = Path.Combine(_root, "tiny");
        Assert.Equal(0, ClusterProcess.Run("model", "init", "--preset", "tiny", "--out", dir).ExitCode);
        var r = ClusterProcess.Run("info", "--model", dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("per expert   6,144 parameters, 12,288 bytes as BF16 (as stored)", r.Stdout);
    }

    [Fact]
    public void Missing_directory_is_a_one_line_error()
    {
        var r = ClusterProcess.Run("info", "--model", Path.Combine(_root, "nope"));
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"cluster info: {Path.Combine(_root, "nope")}: model directory not found", r.Stderr.Trim());
    }
}
