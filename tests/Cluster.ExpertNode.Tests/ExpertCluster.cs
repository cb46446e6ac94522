using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;

namespace Cluster.ExpertNode.Tests;

/// <summary>
/// Expert nodes as in-process Kestrel hosts on loopback ports serving one plan, and the attention side's streams
/// to them. The hosts bind port 0; the client's plan is the same plan with the ports they got.
/// </summary>
public sealed class ExpertCluster : IAsyncDisposable
{
    private readonly TempDir _dir = new();

    private ExpertCluster(PlacementPlan plan) => Plan = plan;

    public PlacementPlan Plan { get; private set; }
    public string PlanPath => _dir.File("plan.json");
    public List<ExpertHost> Hosts { get; } = [];
    public ExpertStreams Streams { get; private set; } = null!;

    public static async Task<ExpertCluster> StartAsync(int nodes, int redundant, string? modelDir = null, int replicas = 1)
    {
        PlacementPlan plan = PlacementPlanner.Plan(TinyCheckpoint.Config, PlacementPlanner.LoopbackNodes(nodes, 1), null, redundant, replicas: replicas);
        var cluster = new ExpertCluster(plan);
        try
        {
            plan.Save(cluster.PlanPath);
            foreach (ExpertNodeAddress node in plan.Nodes)
                cluster.Hosts.Add(await ExpertHost.StartAsync(new ExpertHostOptions { ModelDir = modelDir ?? TinyCheckpoint.Dir, PlanPath = cluster.PlanPath, NodeId = node.Id }));
            cluster.Plan = plan.WithEndpoints(cluster.Hosts.Select(h => $"127.0.0.1:{h.Port}").ToArray());
            cluster.Streams = await ExpertStreams.ConnectAsync(cluster.Plan, TinyCheckpoint.Config, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10));
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Streams?.Dispose();
        foreach (ExpertHost h in Hosts) await h.DisposeAsync();
        _dir.Dispose();
    }
}
