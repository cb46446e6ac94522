using Cluster.AttentionNode;
using Cluster.Protos.V1;
using Cluster.Transport;

namespace Cluster.Gateway.Tests;

/// <summary>
/// A real cluster on loopback for the API tests: one attention node (routed experts in-process) and a gateway in
/// front of it, started once and shared by every test of the collection.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public const int MaxModelLen = 512;

    public AttentionHost Node { get; private set; } = null!;
    public GatewayHost Gateway { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public PeerChannel Grpc { get; private set; } = null!;
    public string ModelId => Gateway.Model.Id;
    public string NodeEndpoint => $"127.0.0.1:{Node.Port}";

    public async Task InitializeAsync()
    {
        Node = await AttentionHost.StartAsync(new AttentionOptions { ModelDir = TestModel.Dir, NodeId = "attention-test", MaxBatch = 8 });
        Gateway = await StartGatewayAsync([NodeEndpoint]);
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{Gateway.HttpPort}"), Timeout = TimeSpan.FromSeconds(60) };
        Grpc = PeerChannel.ForAddress($"http://127.0.0.1:{Gateway.GrpcPort}");
    }

    public static Task<GatewayHost> StartGatewayAsync(IReadOnlyList<string> nodes, int maxQueue = 64, long maxBody = 1 << 20) =>
        GatewayHost.StartAsync(Options(nodes) with { MaxQueue = maxQueue, MaxRequestBodyBytes = maxBody });

    /// <summary>The tests' gateway settings in front of nodes of role both (none for a prefill/decode-only gateway).</summary>
    public static GatewayOptions Options(IReadOnlyList<string> nodes) => new()
    {
        ModelDir = TestModel.Dir,
        AttentionNodes = nodes,
        ModelId = "tiny-test",
        MaxQueue = 64,
        MaxModelLen = MaxModelLen,
        MaxRequestBodyBytes = 1 << 20,
        HealthTimeout = TimeSpan.FromSeconds(1),
    };

    /// <summary>The node's own count of running and queued requests.</summary>
    public async Task<AttentionStats> NodeStatsAsync()
    {
        using var channel = PeerChannel.ForAddress($"http://{NodeEndpoint}");
        return await new Protos.V1.AttentionService.AttentionServiceClient(channel.Invoker).GetStatsAsync(new GetStatsRequest()).ResponseAsync;
    }

    /// <summary>Waits until the node holds no request, failing after a few seconds.</summary>
    public async Task WaitIdleAsync()
    {
        for (int i = 0; i < 200; i++)
        {
            var stats = await NodeStatsAsync();
            if (stats.Running == 0 && stats.Queued == 0) return;
            await Task.Delay(25);
        }
        var last = await NodeStatsAsync();
        Assert.Fail($"the node still holds {last.Running} running and {last.Queued} queued requests");
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        Grpc.Dispose();
        await Gateway.DisposeAsync();
        await Node.DisposeAsync();
    }
}

[CollectionDefinition("cluster")]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>;
