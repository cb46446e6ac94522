using System.Diagnostics;
using System.Globalization;

namespace Cluster.Bench;

/// <summary><c>cluster up</c> as a child process of a benchmark: started from the CLI built beside it, ready when it says so, stopped by SIGTERM.</summary>
public static class ClusterUpProcess
{
    public static Process Start(string model, int port, int grpcPort, params string[] options)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = false };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "cluster.dll"), "up", "--model", model, "--port", $"{port}", "--grpc-port", $"{grpcPort}" })
            psi.ArgumentList.Add(a);
        foreach (string a in options) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    /// <summary>Waits for the line <c>cluster up</c> prints once every node serves.</summary>
    public static async Task WaitReadyAsync(Process up, TimeSpan patience)
    {
        using var timeout = new CancellationTokenSource(patience);
        while (await up.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            if (line.StartsWith("Ctrl-C stops", StringComparison.Ordinal)) return;
        throw new InvalidOperationException($"cluster up exited with code {up.ExitCode} before it was ready");
    }

    public static void Stop(Process up)
    {
        using var kill = Process.Start("kill", ["-TERM", up.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        if (!up.WaitForExit(30_000)) up.Kill(entireProcessTree: true);
    }
}
