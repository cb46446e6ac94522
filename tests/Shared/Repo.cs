using System.Diagnostics;

namespace Cluster.Tests;

/// <summary>Paths of the repository and the pinned npm packages (package.json at the root) that tests run against.</summary>
public static class Repo
{
    private static readonly Lazy<string> s_root = new(() =>
        FindRoot(AppContext.BaseDirectory) ?? FindRoot(SourceDirectory())
        ?? throw new InvalidOperationException("Cluster.sln not found above " + AppContext.BaseDirectory));

    private static string? FindRoot(string start)
    {
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Cluster.sln"))) return d.FullName;
        return null;
    }

    // Builds with an artifacts path outside the repository still find it from where this file was compiled.
    private static string SourceDirectory([System.Runtime.CompilerServices.CallerFilePath] string path = "") =>
        Path.GetDirectoryName(path) ?? "/";

    private static readonly Lazy<string> s_nodeModules = new(InstallNodeModules);

    public static string Root => s_root.Value;

    /// <summary>The root's node_modules, installed with `npm ci` from package-lock.json on first use.</summary>
    public static string NodeModules => s_nodeModules.Value;

    private static string InstallNodeModules()
    {
        string dir = Path.Combine(Root, "node_modules");
        string marker = Path.Combine(dir, ".package-lock.json");
        // Test assemblies run in parallel processes: a file lock keeps two `npm ci` from racing.
        using var gate = AcquireLock(Path.Combine(Path.GetTempPath(), "cluster-npm.lock"));
        if (File.Exists(marker) && File.GetLastWriteTimeUtc(marker) >= File.GetLastWriteTimeUtc(Path.Combine(Root, "package-lock.json")))
            return dir;
        var psi = new ProcessStartInfo("npm", "ci --no-audit --no-fund --loglevel=error") { WorkingDirectory = Root, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException("npm ci failed: " + err);
        return dir;
    }

    private static FileStream AcquireLock(string path)
    {
        for (int i = 0; ; i++)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (i < 1200) { Thread.Sleep(250); }
        }
    }

    /// <summary>Runs node on a script with the repository's node_modules; returns stdout, throws with stderr on failure.</summary>
    public static string RunNode(string script, string? stdin = null, string? workingDirectory = null, int timeoutMs = 300_000)
    {
        _ = NodeModules;
        var psi = new ProcessStartInfo("node") { WorkingDirectory = workingDirectory ?? Root, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        psi.Environment["NODE_PATH"] = Path.Combine(Root, "node_modules");
        using var p = Process.Start(psi)!;
        var stdoutTask = p.StandardOutput.ReadToEndAsync();
        var stderrTask = p.StandardError.ReadToEndAsync();
        if (stdin is not null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(timeoutMs)) { p.Kill(true); throw new TimeoutException($"node {script} timed out"); }
        if (p.ExitCode != 0) throw new InvalidOperationException($"node {script} exited {p.ExitCode}: {stderrTask.Result}");
        return stdoutTask.Result;
    }
}
