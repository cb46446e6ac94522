using System.Diagnostics;

namespace Cluster.Bench;

/// <summary>Where the benchmarks find the repository (models/, node_modules/, test corpora) and what node they run.</summary>
public static class BenchEnvironment
{
    /// <summary>The folder holding Cluster.sln above the working directory or the benchmark binary, or null.</summary>
    public static string? TryFindRepoRoot()
    {
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Cluster.sln"))) return d.FullName;
        return null;
    }

    public static string RepoRoot() =>
        TryFindRepoRoot() ?? throw new InvalidOperationException("Cluster.sln not found above the current directory");

    public static string NodeVersion()
    {
        using var p = Process.Start(new ProcessStartInfo("node", "--version") { RedirectStandardOutput = true })!;
        string v = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return v;
    }

    /// <summary>The 1-minute load average (Linux): other work on the machine moves every timing.</summary>
    public static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "unknown"; }
    }
}
