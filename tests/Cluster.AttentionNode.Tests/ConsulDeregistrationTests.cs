using System.Diagnostics;
using System.Globalization;
using System.Text;
using Cluster.Engine.Config;
using Cluster.ExpertNode.Placement;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// `cluster serve` processes with --discovery consul against the Consul agent stand-in (tests/Shared/Consul): each role
/// registers itself, passes its GRPC check once it serves, and on SIGTERM stops taking work and deregisters before it
/// exits with code 0, so the agent lists it no more (and a gateway watching the agent drops it at once).
/// </summary>
public class ConsulDeregistrationTests
{
    [Theory]
    [InlineData("attention", "cluster-attention")]
    [InlineData("expert", "cluster-expert")]
    public async Task A_role_registers_passes_its_check_and_deregisters_on_SIGTERM(string role, string service)
    {
        await using var agent = await ConsulAgentStandIn.StartAsync();
        using var dir = new TempDir();
        int port = Cluster.Cli.Supervision.FreePorts.Take(1)[0];
        string id = $"{role}-consul-test";
        var args = new List<string> { "serve", role, "--model", TinyModel.Directory, "--port", $"{port}", "--node-id", id,
            "--discovery", "consul", "--consul", agent.Address.ToString(), "--advertise", $"127.0.0.1:{port}" };
        if (role == "expert")
        {
            PlacementPlan plan = PlacementPlanner.Plan(TinyModel.Config, [new ExpertNodeAddress(id, $"127.0.0.1:{port}")]);
            string planPath = dir.File("plan.json");
            plan.Save(planPath);
            args.AddRange(["--plan", planPath]);
        }
        else args.AddRange(["--http-port", $"{Cluster.Cli.Supervision.FreePorts.Take(1)[0]}"]);

        using var process = Start(args, out var stderr);
        try
        {
            await Until(() => agent.Passing(service).Contains(id), TimeSpan.FromSeconds(60), () => $"{id} never passed its check:\n{stderr}");
            Assert.Equal([id], agent.Registered(service));

            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])) kill.WaitForExit();
            using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(patience.Token);
            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}:\n{stderr}");
            // Deregistered by the role itself: the stand-in would keep a critical service for its full minute.
            Assert.Empty(agent.Registered(service));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    private static Process Start(IEnumerable<string> args, out StringBuilder stderr)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Repo.Root };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "cluster.dll"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        var err = new StringBuilder();
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (err) err.AppendLine(e.Data); };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        stderr = err;
        return process;
    }

    private static async Task Until(Func<bool> condition, TimeSpan patience, Func<string> why)
    {
        var until = DateTime.UtcNow + patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, why());
            await Task.Delay(100);
        }
    }
}
