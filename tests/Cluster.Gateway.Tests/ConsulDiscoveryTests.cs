using System.Net;
using Cluster.Gateway.Nodes;
using Cluster.Transport.Discovery;

namespace Cluster.Gateway.Tests;

/// <summary>
/// The gateway following its attention nodes through Consul: nodes register with the agent stand-in
/// (<see cref="ConsulAgentStandIn"/>), which runs their GRPC checks; the gateway watches the passing instances with
/// blocking queries.
/// </summary>
public sealed class ConsulDiscoveryTests
{
    private const string Service = "cluster-attention";
    private const string Completion = "{\"model\":\"tiny-test\",\"prompt\":[0,1]}";

    private static Task<ConsulRegistration> RegisterAsync(ConsulAgent agent, ScriptedNode node, string id) =>
        ConsulRegistration.RegisterAsync(agent, new ConsulServiceSettings
        {
            Id = id,
            Name = Service,
            Advertise = node.Endpoint,
            Meta = new Dictionary<string, string> { ["role"] = "both" },
            CheckInterval = TimeSpan.FromMilliseconds(100),
            CheckTimeout = TimeSpan.FromSeconds(2),
        }, CancellationToken.None);

    private static Task<GatewayHost> StartGatewayAsync(ConsulAgent agent) =>
        GatewayHost.StartAsync(ClusterFixture.Options([]) with
        {
            Discovery = new GatewayDiscovery { Attention = new ConsulDiscovery(agent, Service) { Wait = TimeSpan.FromSeconds(30) } },
        });

    private static bool Routable(GatewayHost gateway, ScriptedNode node) =>
        gateway.Router.Nodes.Any(n => n.Endpoint == node.Endpoint && n.State.Usable);

    private static string Describe(GatewayHost gateway) =>
        "gateway nodes: " + string.Join(", ", gateway.Router.Nodes.Select(n => $"{n.Endpoint} ({n.State.Error ?? "usable"})"));

    [Fact]
    public async Task Nodes_are_routed_to_once_they_pass_and_dropped_as_soon_as_they_fail_or_deregister()
    {
        await using ConsulAgentStandIn consul = await ConsulAgentStandIn.StartAsync();
        using var agent = new ConsulAgent(consul.Address);
        await using GatewayHost gateway = await StartGatewayAsync(agent);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };
        Assert.Empty(gateway.Router.Nodes);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await ApiClient.PostRawAsync(http, "/v1/completions", Completion)).Status);

        // The first node: picked up once its check passes, and given the request.
        await using ScriptedNode first = await ScriptedNode.StartAsync(TestModel.Served);
        await using ConsulRegistration firstRegistration = await RegisterAsync(agent, first, "attention-0");
        await Until.TrueAsync(() => Routable(gateway, first), () => Describe(gateway));
        Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(http, "/v1/completions", Completion)).Status);
        Assert.Equal(1, first.Requests);

        // A second one: idle nodes take turns, so the new one gets half of the next requests.
        await using ScriptedNode second = await ScriptedNode.StartAsync(TestModel.Served);
        ConsulRegistration secondRegistration = await RegisterAsync(agent, second, "attention-1");
        await Until.TrueAsync(() => Routable(gateway, second), () => Describe(gateway));
        for (int i = 0; i < 4; i++) Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(http, "/v1/completions", Completion)).Status);
        Assert.Equal(2, second.Requests);
        Assert.Equal(3, first.Requests);

        // The first stops: its check fails, the agent stops listing it, and the gateway drops it before routing again.
        await first.DisposeAsync();
        await Until.TrueAsync(() => gateway.Router.Nodes.All(n => n.Endpoint != first.Endpoint), () => Describe(gateway));
        Assert.DoesNotContain("attention-0", consul.Passing(Service));
        for (int i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(http, "/v1/completions", Completion)).Status);
        Assert.Equal(3, first.Requests);
        Assert.Equal(5, second.Requests);

        // Deregistration (a role shutting down) removes the instance from the agent and the node from routing at once,
        // while it still answers SERVING.
        await secondRegistration.DisposeAsync();
        Assert.DoesNotContain("attention-1", consul.Registered(Service));
        await Until.TrueAsync(() => gateway.Router.Nodes.Count == 0, () => Describe(gateway));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await ApiClient.PostRawAsync(http, "/v1/completions", Completion)).Status);
        Assert.Equal(5, second.Requests);
    }

    [Fact]
    public async Task A_node_whose_check_says_not_serving_is_never_routed_to()
    {
        await using ConsulAgentStandIn consul = await ConsulAgentStandIn.StartAsync();
        using var agent = new ConsulAgent(consul.Address);
        await using ScriptedNode serving = await ScriptedNode.StartAsync(TestModel.Served), loading = await ScriptedNode.StartAsync(TestModel.Served);
        loading.Health.MarkNotServing();
        await using ConsulRegistration a = await RegisterAsync(agent, serving, "attention-0"), b = await RegisterAsync(agent, loading, "attention-1");
        await using GatewayHost gateway = await StartGatewayAsync(agent);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };

        // Both checks have run more than once: the NOT_SERVING one is registered but not passing.
        await Until.TrueAsync(() => consul.CheckRuns("attention-1") >= 3 && Routable(gateway, serving), () => Describe(gateway));
        Assert.Contains("attention-1", consul.Registered(Service));
        Assert.DoesNotContain("attention-1", consul.Passing(Service));
        for (int i = 0; i < 4; i++) Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(http, "/v1/completions", Completion)).Status);
        Assert.Equal(0, loading.Requests);
        Assert.Equal(4, serving.Requests);
        Assert.DoesNotContain(gateway.Router.Nodes, n => n.Endpoint == loading.Endpoint);

        // SERVING is all it lacked.
        loading.Health.MarkServing();
        await Until.TrueAsync(() => Routable(gateway, loading), () => Describe(gateway));
    }

    [Theory]
    [InlineData(0ul)]
    [InlineData(1ul)]
    public async Task An_index_of_zero_or_going_backwards_starts_over_without_looping_hot(ulong forced)
    {
        await using ConsulAgentStandIn consul = await ConsulAgentStandIn.StartAsync();
        using var agent = new ConsulAgent(consul.Address);
        await using ScriptedNode node = await ScriptedNode.StartAsync(TestModel.Served);
        await using ConsulRegistration registration = await RegisterAsync(agent, node, "attention-0");
        await Until.TrueAsync(() => consul.Passing(Service).Count == 1, () => "the check never passed");
        var discovery = new ConsulDiscovery(agent, Service) { Wait = TimeSpan.FromSeconds(30), RetryDelay = TimeSpan.FromMilliseconds(200) };
        using var stop = new CancellationTokenSource();
        var seen = new List<IReadOnlyList<DiscoveredPeer>>();
        Task watch = Task.Run(async () =>
        {
            await foreach (var peers in discovery.WatchAsync(stop.Token)) lock (seen) seen.Add(peers);
        });
        await Until.TrueAsync(() => { lock (seen) return seen.Count == 1; }, () => "no first answer");

        // Every answer from now on carries an index of 0, or one below the index already seen: each is a reset.
        int before = consul.HealthQueries;
        var started = DateTime.UtcNow;
        consul.ForceIndex(forced);
        await Until.TrueAsync(() => consul.HealthQueries >= before + 6, () => $"{consul.HealthQueries - before} queries");
        // A reset, and an answer whose index did not move, each pause the next query: at least every other one of six
        // waited, where a hot loop would have sent them all within milliseconds.
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(2 * 200), $"6 queries in {(DateTime.UtcNow - started).TotalMilliseconds} ms");
        // Unchanged answers are not reported again.
        lock (seen) Assert.Single(seen);
        Assert.Equal(node.Endpoint, seen[0].Single().Endpoint);
        await stop.CancelAsync();
        await watch;
    }
}
