using System.Diagnostics;
using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.ExpertNode.Tests;

/// <summary>
/// A lost expert node costs no step while its experts have live replicas: a killed node's rows go to the replicas
/// within the same Run, a node that stops answering is given up at the failover deadline, the result is the one
/// the healthy cluster gives, and a node that comes back is used again. Without a replica the step fails naming
/// layer, expert and node.
/// </summary>
public class FailoverTests
{
    private static int Hidden => TinyCheckpoint.Config.HiddenSize;
    private static int K => TinyCheckpoint.Config.NumExpertsPerTok;
    private const int Rows = 16;

    /// <summary>Each row picks K distinct experts; together the rows use every expert, so every node is needed.</summary>
    private static (int[] Ids, float[] Weights) Choices()
    {
        int experts = TinyCheckpoint.Config.NRoutedExperts;
        var ids = new int[Rows * K];
        var weights = new float[Rows * K];
        for (int r = 0; r < Rows; r++)
            for (int j = 0; j < K; j++)
            {
                ids[r * K + j] = (r * K + j * 3) % experts;
                weights[r * K + j] = 0.25f + 0.1f * j;
            }
        for (int r = 0; r < Rows; r++)
            if (ids.AsSpan(r * K, K).ToArray().Distinct().Count() != K) throw new InvalidOperationException("choices of one row must differ");
        return (ids, weights);
    }

    private static float[] Run(RemoteExperts experts, float[] rows, int[] ids, float[] weights)
    {
        var output = new float[Rows * Hidden];
        experts.Run(rows, Rows, ids, weights, output);
        return output;
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        // Partial sums are grouped by node, so moving experts between nodes only reorders float additions.
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i])), $"element {i}: {expected[i]} vs {actual[i]}");
    }

    [Fact]
    public async Task AKilledNodesRowsGoToReplicasInTheSameStepAndTheNodeIsUsedAgainWhenBack()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(3, 0, replicas: 2);
        int layer = TinyCheckpoint.MoeLayers[0];
        RemoteExperts remote = cluster.Streams.ForLayer(layer, TensorDType.F32);
        float[] rows = TinyCheckpoint.Rows(Rows, 7);
        var (ids, weights) = Choices();
        float[] healthy = await Task.Run(() => Run(remote, rows, ids, weights));

        int port = cluster.Hosts[1].Port;
        await cluster.Hosts[1].DisposeAsync();
        cluster.Hosts.RemoveAt(1);
        var clock = Stopwatch.StartNew();
        float[] degraded = await Task.Run(() => Run(remote, rows, ids, weights));
        clock.Stop();
        AssertClose(healthy, degraded);
        Assert.NotNull(cluster.Streams.DownReason(1));
        Assert.Equal("", cluster.Streams.Uncovered());
        // The step that met the dead node still finished well inside the failover goal (a broken stream is seen at once).
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"failover step took {clock.Elapsed}");
        // While it is down, steps do not wait for it.
        AssertClose(healthy, await Task.Run(() => Run(remote, rows, ids, weights)));

        cluster.Hosts.Add(await ExpertHost.StartAsync(new ExpertHostOptions { ModelDir = TinyCheckpoint.Dir, PlanPath = cluster.PlanPath, NodeId = "expert-1", Port = port }));
        DateTime until = DateTime.UtcNow.AddSeconds(30);
        while (cluster.Streams.DownReason(1) is not null && DateTime.UtcNow < until) await Task.Delay(50);
        Assert.Null(cluster.Streams.DownReason(1));
        AssertClose(healthy, await Task.Run(() => Run(remote, rows, ids, weights)));
        Assert.True((await cluster.Streams.GetInfoAsync())[1].SlotTokens.Any(t => t > 0), "the node that came back serves rows again");
    }

    [Fact]
    public async Task ANodeThatStopsAnsweringIsGivenUpAtTheFailoverDeadline()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(3, 0, replicas: 2);
        int layer = TinyCheckpoint.MoeLayers[0];
        float[] rows = TinyCheckpoint.Rows(Rows, 8);
        var (ids, weights) = Choices();
        float[] healthy = await Task.Run(() => Run(cluster.Streams.ForLayer(layer, TensorDType.F32), rows, ids, weights));

        // Node 2's place taken by a server that accepts frames and never answers them.
        await using var stuck = await GrpcServer.StartAsync(new GrpcServerOptions(),
            b => b.Services.AddSingleton(new SilentExpertNode("expert-2", cluster.Plan.Version)), app => app.MapGrpcService<SilentExpertNode>());
        // Its health says SERVING, as a hung process's health service may well keep saying.
        new RoleHealth(stuck.Services.GetRequiredService<Grpc.HealthCheck.HealthServiceImpl>(), Protos.V1.ExpertService.Descriptor.FullName).MarkServing();
        PlacementPlan plan = cluster.Plan.WithEndpoints([cluster.Plan.Nodes[0].Endpoint, cluster.Plan.Nodes[1].Endpoint, $"127.0.0.1:{stuck.Port}"]);
        using ExpertStreams streams = await ExpertStreams.ConnectAsync(plan, TinyCheckpoint.Config, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(60));
        streams.FailoverFirst = TimeSpan.FromMilliseconds(500);
        var clock = Stopwatch.StartNew();
        float[] result = await Task.Run(() => Run(streams.ForLayer(layer, TensorDType.F32), rows, ids, weights));
        clock.Stop();
        AssertClose(healthy, result);
        Assert.Equal("no combine within 500 ms", streams.DownReason(2));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the step waited {clock.Elapsed} for a silent node");
    }

    [Fact]
    public async Task WithoutAReplicaTheStepFailsNamingLayerExpertAndNode()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 0);
        int layer = TinyCheckpoint.MoeLayers[0];
        RemoteExperts remote = cluster.Streams.ForLayer(layer, TensorDType.F32);
        float[] rows = TinyCheckpoint.Rows(Rows, 9);
        var (ids, weights) = Choices();
        await Task.Run(() => Run(remote, rows, ids, weights));
        await cluster.Hosts[1].DisposeAsync();
        cluster.Hosts.RemoveAt(1);
        var e = await Assert.ThrowsAsync<ExpertNodeException>(() => Task.Run(() => Run(remote, rows, ids, weights)));
        Assert.Equal("expert-1", e.NodeId);
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(e.Message, $@"^expert node expert-1 \(127\.0\.0\.1:\d+\) failed layer {layer}: .*; layer {layer}: expert \d+ has no live replica$"), e.Message);
        Assert.StartsWith($"layer {layer}: ", cluster.Streams.Uncovered());
    }

    /// <summary>An expert node that says who it is and then swallows every dispatch frame: a hung process.</summary>
    private sealed class SilentExpertNode(string nodeId, ulong version) : Protos.V1.ExpertService.ExpertServiceBase
    {
        public override Task<ExpertNodeInfo> GetInfo(GetExpertInfoRequest request, ServerCallContext context) =>
            Task.FromResult(new ExpertNodeInfo { NodeId = nodeId, PlanVersion = version });

        public override async Task Dispatch(IAsyncStreamReader<DispatchFrame> requestStream, IServerStreamWriter<CombineFrame> responseStream, ServerCallContext context)
        {
            try
            {
                while (await requestStream.MoveNext(context.CancellationToken)) { }
            }
            catch (Exception) when (context.CancellationToken.IsCancellationRequested) { }
        }
    }
}
