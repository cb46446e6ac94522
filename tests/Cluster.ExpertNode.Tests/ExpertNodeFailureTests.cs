using System.Runtime.InteropServices;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Model;
using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.ExpertNode.Tests;

public class ExpertNodeFailureTests
{
    private static int Hidden => TinyCheckpoint.Config.HiddenSize;
    private static int K => TinyCheckpoint.Config.NumExpertsPerTok;

    /// <summary>A valid BF16 frame of one row choosing <paramref name="experts"/> (padded with -1 to top_k).</summary>
    private static DispatchFrame Frame(ulong batch, int layer, ulong version, params int[] experts)
    {
        var ids = Enumerable.Repeat(-1, K).ToArray();
        var weights = new float[K];
        for (int i = 0; i < experts.Length; i++) (ids[i], weights[i]) = (experts[i], 0.5f);
        var row = new byte[Hidden * 2];
        for (int i = 0; i < Hidden; i++) row[2 * i + 1] = 0x3F; // 0.5 in bf16
        return new DispatchFrame
        {
            BatchId = batch, Layer = (uint)layer, Rows = 1, Hidden = (uint)Hidden, Dtype = TensorDType.Bf16,
            Activations = ByteString.CopyFrom(row), TopK = (uint)K, PlanVersion = version,
            ExpertIds = ByteString.CopyFrom(MemoryMarshal.AsBytes(ids.AsSpan())),
            Weights = ByteString.CopyFrom(MemoryMarshal.AsBytes(weights.AsSpan())),
        };
    }

    private static async Task<CombineFrame> ExchangeAsync(AsyncDuplexStreamingCall<DispatchFrame, CombineFrame> call, DispatchFrame frame)
    {
        await call.RequestStream.WriteAsync(frame);
        Assert.True(await call.ResponseStream.MoveNext());
        return call.ResponseStream.Current;
    }

    [Fact]
    public async Task RefusedFramesGetAnErrorAndTheStreamStaysOpen()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 0);
        int layer = TinyCheckpoint.MoeLayers[0];
        int hosted = cluster.Plan.Layer(layer).SlotsOn(0)[0], foreign = cluster.Plan.Layer(layer).SlotsOn(1)[0];
        ulong version = cluster.Plan.Version;
        using var channel = PeerChannel.ForAddress(cluster.Plan.Nodes[0].Uri);
        using var call = new Protos.V1.ExpertService.ExpertServiceClient(channel.Invoker).Dispatch();

        CombineFrame wrongVersion = await ExchangeAsync(call, Frame(1, layer, version + 1, hosted));
        Assert.Equal("expert node expert-0: frame routed with plan version 2 but this node holds version 1", wrongVersion.Error);
        Assert.Equal(1UL, wrongVersion.BatchId);

        CombineFrame notHosted = await ExchangeAsync(call, Frame(2, layer, version, hosted, foreign));
        Assert.Equal($"expert node expert-0: layer {layer}: expert {foreign} is not hosted here under plan version 1", notHosted.Error);

        CombineFrame denseLayer = await ExchangeAsync(call, Frame(3, 0, version, hosted));
        Assert.Equal("expert node expert-0: layer 0 is not a MoE layer of the plan", denseLayer.Error);

        DispatchFrame truncated = Frame(4, layer, version, hosted);
        truncated.Activations = ByteString.CopyFrom(truncated.Activations.Span[..10]);
        Assert.Contains("activations hold 10 bytes but 1 rows x 64 Bf16 need 128", (await ExchangeAsync(call, truncated)).Error);

        // The same stream still serves a good frame, and the refused ones were not counted.
        CombineFrame ok = await ExchangeAsync(call, Frame(5, layer, version, hosted));
        Assert.Equal("", ok.Error);
        Assert.Equal(5UL, ok.BatchId);
        Assert.Equal(Hidden * 4, ok.PartialSums.Length);
        Assert.Equal(1L, cluster.Hosts[0].Experts.Slots().Sum(s => s.Tokens));

        // A caller's out-of-range id is its own bug, caught before anything is sent.
        RemoteExperts remote = cluster.Streams.ForLayer(layer, TensorDType.Bf16);
        var bad = Enumerable.Repeat(-1, K).ToArray();
        bad[0] = TinyCheckpoint.Config.NRoutedExperts;
        Assert.Contains("out of range", Assert.Throws<ArgumentException>(() => remote.Run(new float[Hidden], 1, bad, new float[K], new float[Hidden])).Message);
    }

    [Fact]
    public async Task NodeRefusalReachesTheCallerNamingTheNode()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 0);
        // A plan with the same version but every expert on the other node: a misconfiguration the nodes must catch.
        var swapped = cluster.Plan.Layers.Select(l => new LayerPlacement(l.Layer, 2,
            Enumerable.Range(0, l.Experts).Select(e => l.ReplicasOf(e).ToArray().Select(r => r with { Node = 1 - r.Node }).ToArray()).ToArray())).ToArray();
        var plan = new PlacementPlan(cluster.Plan.Version, cluster.Plan.RoutedExperts, cluster.Plan.Nodes, swapped);
        using ExpertStreams streams = await ExpertStreams.ConnectAsync(plan, TinyCheckpoint.Config, TimeSpan.FromSeconds(5));
        int layer = TinyCheckpoint.MoeLayers[0];
        var ids = Enumerable.Repeat(-1, K).ToArray();
        ids[0] = 0;
        var e = await Assert.ThrowsAsync<ExpertNodeException>(() => Task.Run(() =>
            streams.ForLayer(layer, TensorDType.Bf16).Run(new float[Hidden], 1, ids, new float[K], new float[Hidden])));
        int wrongNode = 1 - cluster.Plan.Layer(layer).ReplicasOf(0)[0].Node;
        Assert.Equal($"expert node expert-{wrongNode}: layer {layer}: expert 0 is not hosted here under plan version 1", e.Message);
        Assert.Equal($"expert-{wrongNode}", e.NodeId);
    }

    [Fact]
    public async Task DeadNodeFailsRunNamingItAndTheStreamReconnectsWhenItIsBack()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 0);
        int layer = TinyCheckpoint.MoeLayers[0], n = 4;
        RemoteExperts remote = cluster.Streams.ForLayer(layer, TensorDType.Bf16);
        float[] rows = TinyCheckpoint.Rows(n, 5);
        // Every row picks one expert on each node, so both nodes are needed.
        int[] ids = new int[n * K];
        Array.Fill(ids, -1);
        for (int r = 0; r < n; r++) (ids[r * K], ids[r * K + 1]) = (cluster.Plan.Layer(layer).SlotsOn(0)[r], cluster.Plan.Layer(layer).SlotsOn(1)[r]);
        float[] weights = Enumerable.Repeat(0.5f, n * K).ToArray();
        var before = new float[n * Hidden];
        await Task.Run(() => remote.Run(rows, n, ids, weights, before));

        int port = cluster.Hosts[1].Port;
        await cluster.Hosts[1].DisposeAsync();
        cluster.Hosts.RemoveAt(1);
        var e = await Assert.ThrowsAsync<ExpertNodeException>(() => Task.Run(() => remote.Run(rows, n, ids, weights, new float[n * Hidden])));
        Assert.Equal("expert-1", e.NodeId);
        Assert.StartsWith($"expert node expert-1 (127.0.0.1:{port}) failed layer {layer}: ", e.Message);

        // The node comes back on its port: the probe finds it (health, GetInfo, an empty dispatch), and the next Run
        // opens a new stream and gets the same result.
        cluster.Hosts.Add(await ExpertHost.StartAsync(new ExpertHostOptions { ModelDir = TinyCheckpoint.Dir, PlanPath = cluster.PlanPath, NodeId = "expert-1", Port = port }));
        var until = DateTime.UtcNow.AddSeconds(30);
        while (cluster.Streams.DownReason(1) is not null && DateTime.UtcNow < until) await Task.Delay(20);
        Assert.Null(cluster.Streams.DownReason(1));
        var after = new float[n * Hidden];
        await Task.Run(() => remote.Run(rows, n, ids, weights, after));
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task UnreachableNodeFailsConnectNamingIt()
    {
        var plan = PlacementPlanner.Plan(TinyCheckpoint.Config, PlacementPlanner.LoopbackNodes(1, 1));
        var e = await Assert.ThrowsAsync<ExpertNodeException>(() => ExpertStreams.ConnectAsync(plan, TinyCheckpoint.Config, TimeSpan.FromMilliseconds(300)));
        Assert.StartsWith("expert node expert-0 (127.0.0.1:1) is not reachable: ", e.Message);
    }

    [Fact]
    public async Task NodeLoadsOnlyItsExpertsAndNeverReadsTheOthersBytes()
    {
        using var dir = new TempDir();
        TinyCheckpoint.Write(dir.Path);
        var plan = PlacementPlanner.Plan(TinyCheckpoint.Config, PlacementPlanner.LoopbackNodes(2, 1));
        HashSet<string> mine = HostedExperts.TensorNames(plan, 0);
        // Every other routed expert's bytes become NaN: serving would show it.
        int corrupted = SafetensorsBytes.Overwrite(dir.Path, name => HostedExperts.IsRoutedExpertTensor(name) && !mine.Contains(name), 0xFF);
        // The other node's 16 experts per MoE layer, and the MTP layer's experts (never loaded either).
        Assert.Equal((TinyCheckpoint.MoeLayers.Length * 16 + TinyCheckpoint.Config.NRoutedExperts) * 3, corrupted);
        plan.Save(dir.File("plan.json"));

        await using var host = await ExpertHost.StartAsync(new ExpertHostOptions { ModelDir = dir.Path, PlanPath = dir.File("plan.json"), NodeId = "expert-0" });
        using var clean = Checkpoint.Open(TinyCheckpoint.Dir);
        long expertBytes = mine.Sum(name => clean.Get(name).TotalBytes);
        Assert.Equal(expertBytes, host.LoadedBytes);

        using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{host.Port}");
        using var call = new Protos.V1.ExpertService.ExpertServiceClient(channel.Invoker).Dispatch();
        foreach (int layer in TinyCheckpoint.MoeLayers)
        {
            int[] hosted = plan.Layer(layer).SlotsOn(0).ToArray();
            DispatchFrame frame = Frame(1, layer, plan.Version, hosted[..K]);
            CombineFrame reply = await ExchangeAsync(call, frame);
            Assert.Equal("", reply.Error);
            var expected = new float[Hidden];
            var row = new float[Hidden];
            Array.Fill(row, 0.5f);
            RoutedExperts.Load(clean, TinyCheckpoint.Config, layer, hosted).Run(row, 1, MemoryMarshal.Cast<byte, int>(frame.ExpertIds.Span),
                MemoryMarshal.Cast<byte, float>(frame.Weights.Span), expected);
            Assert.Equal(expected, MemoryMarshal.Cast<byte, float>(reply.PartialSums.Span).ToArray());
        }
    }
}
