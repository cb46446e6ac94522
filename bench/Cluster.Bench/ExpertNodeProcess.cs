using System.Diagnostics;
using System.Globalization;

namespace Cluster.Bench;

/// <summary><c>cluster serve expert</c> as a child process of a benchmark, from the CLI built beside it; ready when it prints READY.</summary>
public static class ExpertNodeProcess
{
    public static async Task<Process> StartAsync(string model, string plan, string id, int port)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "cluster.dll"), "serve", "expert", "--model", model, "--plan", plan,
            "--node-id", id, "--port", port.ToString(CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        _ = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            if (line.StartsWith("READY ", StringComparison.Ordinal))
            {
                _ = process.StandardOutput.ReadToEndAsync();
                return process;
            }
        throw new InvalidOperationException($"{id} exited with code {process.ExitCode} before it was ready");
    }
}
