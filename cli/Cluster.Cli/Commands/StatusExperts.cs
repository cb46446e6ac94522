using System.Text.Json.Nodes;
using Cluster.Protos.V1;

namespace Cluster.Cli.Commands;

/// <summary>
/// The <c>experts</c> part of <c>cluster status</c>: the gateway's Control answer (plan version, each expert node's
/// state, slots, rows and restarts, the balance since the last plan), or why there is none (local experts, an old
/// gateway, an unreachable port).
/// </summary>
internal static class StatusExperts
{
    public static async Task<(ExpertsStatus? Status, string? Problem)> ReadAsync(ControlTarget control, CancellationToken cancel)
    {
        try { return (await ExpertsControl.CallAsync(control, c => c.GetExpertsAsync(new GetExpertsRequest(), deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: cancel).ResponseAsync), null); }
        catch (IOException e) { return (null, e.Message); }
    }

    /// <summary><paramref name="body"/> (the gateway's /cluster/status JSON) with an <c>experts</c> object added.</summary>
    public static string Merge(string body, ExpertsStatus? status, string? problem)
    {
        JsonNode root = JsonNode.Parse(body) ?? new JsonObject();
        root["experts"] = status is not null ? JsonNode.Parse(ExpertsStatusCommand.Json(status, indented: false)) : new JsonObject { ["error"] = problem };
        return root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }

    public static void Write(ExpertsStatus? status, string? problem, TextWriter output)
    {
        output.WriteLine();
        if (status is null)
        {
            output.WriteLine($"experts: {problem}");
            return;
        }
        output.WriteLine($"experts: plan version {status.PlanVersion}, max/mean rows per node since the plan {status.MaxOverMeanRows:F3}");
        ExpertsStatusCommand.WriteTable(status, output);
    }
}
