using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Cluster.Cli.Tests;

/// <summary>Runs the built `cluster` command as a child process, the way a user does.</summary>
public static class ClusterProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>The repository root, found from this source file so it works wherever the tests were built.</summary>
    public static string RepoRoot { get; } = Path.GetFullPath(Path.Combine(SourceDirectory(), "..", ".."));

    public static Result Run(params string[] args) => RunWithInput(null, args);

    /// <summary>Runs the command with <paramref name="stdin"/> as its standard input (closed after it), or none.</summary>
    public static Result RunWithInput(string? stdin, params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "cluster.dll");
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = RepoRoot, RedirectStandardInput = stdin is not null, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(dll);
        foreach (string a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        if (stdin is not null)
        {
            // UTF-8 without a byte-order mark, as a pipe from a shell delivers it.
            using var input = new StreamWriter(p.StandardInput.BaseStream, new System.Text.UTF8Encoding(false));
            input.Write(stdin);
        }
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException("cluster " + string.Join(' ', args)); }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string SourceDirectory([CallerFilePath] string file = "") => Path.GetDirectoryName(file)!;
}
