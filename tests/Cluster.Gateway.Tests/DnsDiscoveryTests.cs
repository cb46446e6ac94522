using System.Net;
using Cluster.Transport.Discovery;

namespace Cluster.Gateway.Tests;

/// <summary>The kubernetes backend: a name re-resolved every interval, the records changed by the test through the resolver seam.</summary>
public sealed class DnsDiscoveryTests
{
    /// <summary>A DNS server the test edits: what <see cref="Name"/> resolves to now, or NXDOMAIN when null.</summary>
    private sealed class EditableRecords : IHostResolver
    {
        private volatile IPAddress[]? _addresses;
        public const string Name = "attention.cluster.svc.cluster.local";
        public IPAddress[]? Addresses { get => _addresses; set => _addresses = value; }

        public Task<IPAddress[]> ResolveAsync(string host, CancellationToken ct) =>
            host == Name && _addresses is { } a ? Task.FromResult(a) : Task.FromException<IPAddress[]>(new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.HostNotFound));
    }

    private static string Describe(GatewayHost gateway) =>
        "gateway nodes: " + string.Join(", ", gateway.Router.Nodes.Select(n => $"{n.Endpoint} ({n.State.Error ?? "usable"})"));

    [Fact]
    public async Task The_gateway_follows_the_records_of_a_headless_service()
    {
        // Two nodes on one port of two loopback addresses, as two pods behind one Service port.
        await using ScriptedNode a = await ScriptedNode.StartAsync(TestModel.Served, listen: new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
        int port = IPEndPoint.Parse(a.Endpoint).Port;
        await using ScriptedNode b = await ScriptedNode.StartAsync(TestModel.Served, listen: new IPEndPoint(IPAddress.Parse("127.0.0.3"), port));
        var records = new EditableRecords { Addresses = [IPAddress.Parse("127.0.0.2")] };
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([]) with
        {
            Discovery = new GatewayDiscovery { Attention = new DnsDiscovery($"{EditableRecords.Name}:{port}", TimeSpan.FromMilliseconds(50), records) },
        });
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };
        const string completion = "{\"model\":\"tiny-test\",\"prompt\":[0,1]}";
        Assert.Equal(a.Endpoint, Assert.Single(gateway.Router.Nodes).Endpoint);

        // The second pod's record appears: it gets its turn.
        records.Addresses = [IPAddress.Parse("127.0.0.3"), IPAddress.Parse("127.0.0.2")];
        await Until.TrueAsync(() => gateway.Router.Nodes.Any(n => n.Endpoint == b.Endpoint && n.State.Usable), () => Describe(gateway));
        for (int i = 0; i < 4; i++) Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(http, "/v1/completions", completion)).Status);
        Assert.Equal(2, a.Requests);
        Assert.Equal(2, b.Requests);

        // The first pod's record goes: no request reaches it after the gateway has seen that.
        records.Addresses = [IPAddress.Parse("127.0.0.3")];
        await Until.TrueAsync(() => gateway.Router.Nodes.All(n => n.Endpoint != a.Endpoint), () => Describe(gateway));
        for (int i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(http, "/v1/completions", completion)).Status);
        Assert.Equal(2, a.Requests);
        Assert.Equal(5, b.Requests);

        // NXDOMAIN, as for a headless Service without ready pods: no node.
        records.Addresses = null;
        await Until.TrueAsync(() => gateway.Router.Nodes.Count == 0, () => Describe(gateway));
    }

    [Fact]
    public async Task The_system_resolver_resolves_localhost()
    {
        var discovery = new DnsDiscovery("localhost:9000", TimeSpan.FromMinutes(1));
        using var stop = new CancellationTokenSource();
        await using var watch = discovery.WatchAsync(stop.Token).GetAsyncEnumerator();
        Assert.True(await watch.MoveNextAsync());
        Assert.NotEmpty(watch.Current);
        Assert.All(watch.Current, p => Assert.True(p.Endpoint is "127.0.0.1:9000" or "[::1]:9000", p.Endpoint));
        await stop.CancelAsync();
    }
}
