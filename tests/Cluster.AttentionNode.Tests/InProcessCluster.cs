using Cluster.Engine.Cache;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// Expert nodes and one attention node as Kestrel hosts on loopback ports, wired by a placement plan: the
/// expert hosts bind port 0, and the attention node gets the same plan with the ports they got.
/// </summary>
public sealed class InProcessCluster : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-attention-plan-").FullName;

    public List<ExpertHost> Experts { get; } = [];
    public AttentionHost Attention { get; private set; } = null!;
    public PeerChannel Channel { get; private set; } = null!;

    public static async Task<InProcessCluster> StartAsync(int expertNodes, int redundant, DispatchFormat dispatch, LatentFormat cache = LatentFormat.BF16, int replicas = 1, bool overlap = false)
    {
        var cluster = new InProcessCluster();
        try
        {
            PlacementPlan plan = PlacementPlanner.Plan(TinyModel.Config, PlacementPlanner.LoopbackNodes(expertNodes, 1), null, redundant, replicas: replicas);
            string expertPlan = Path.Combine(cluster._dir, "plan.json"), attentionPlan = Path.Combine(cluster._dir, "plan-bound.json");
            plan.Save(expertPlan);
            foreach (ExpertNodeAddress node in plan.Nodes)
                cluster.Experts.Add(await ExpertHost.StartAsync(new ExpertHostOptions { ModelDir = TinyModel.Directory, PlanPath = expertPlan, NodeId = node.Id }));
            plan.WithEndpoints(cluster.Experts.Select(h => $"127.0.0.1:{h.Port}").ToArray()).Save(attentionPlan);
            cluster.Attention = await AttentionHost.StartAsync(new AttentionOptions
            {
                ModelDir = TinyModel.Directory, PlanPath = attentionPlan, Dispatch = dispatch, KvCacheFormat = cache, ExpertWait = TimeSpan.FromSeconds(20), MicroBatchOverlap = overlap,
            });
            cluster.Channel = PeerChannel.ForAddress($"http://127.0.0.1:{cluster.Attention.Port}");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    public async Task<List<TokenEvent>> GenerateAsync(TokenGenerateRequest request)
    {
        using var call = new Protos.V1.AttentionService.AttentionServiceClient(Channel.Invoker).Generate(request, deadline: DateTime.UtcNow + TimeSpan.FromSeconds(60));
        var events = new List<TokenEvent>();
        while (await call.ResponseStream.MoveNext()) events.Add(call.ResponseStream.Current);
        return events;
    }

    public async ValueTask DisposeAsync()
    {
        Channel?.Dispose();
        if (Attention is not null) await Attention.DisposeAsync();
        foreach (ExpertHost h in Experts) await h.DisposeAsync();
        Directory.Delete(_dir, true);
    }
}
