using System.Text.Json;
using Cluster.ExpertNode.Host;
using Cluster.Transport;
using Grpc.Health.V1;

namespace Cluster.ExpertNode.Tests;

public class ExpertHostTests
{
    [Fact]
    public void ReadyLineIsOneLineOfJsonAfterReady()
    {
        string line = ExpertHost.ReadyLine("node \"7\"", 4242);
        Assert.StartsWith("READY {", line);
        using JsonDocument doc = JsonDocument.Parse(line["READY ".Length..]);
        Assert.Equal("expert", doc.RootElement.GetProperty("role").GetString());
        Assert.Equal("node \"7\"", doc.RootElement.GetProperty("node_id").GetString());
        Assert.Equal(4242, doc.RootElement.GetProperty("grpc_port").GetInt32());
        Assert.False(doc.RootElement.TryGetProperty("http_port", out _));
    }

    [Fact]
    public async Task ServesHealthAndReportsItsSlots()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 1);
        using var channel = PeerChannel.ForAddress(cluster.Plan.Nodes[1].Uri);
        HealthCheckResponse health = await new global::Grpc.Health.V1.Health.HealthClient(channel.Invoker).CheckAsync(new HealthCheckRequest()).ResponseAsync;
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

        Protos.V1.ExpertNodeInfo info = (await cluster.Streams.GetInfoAsync())[1];
        Assert.Equal("expert-1", info.NodeId);
        Assert.Equal(cluster.Plan.Version, info.PlanVersion);
        var expected = cluster.Plan.Layers.SelectMany(l => l.SlotsOn(1).ToArray().Select(e => (l.Layer, e))).ToArray();
        Assert.Equal(expected, info.Slots.Select(s => ((int)s.Layer, (int)s.Expert)).ToArray());
        Assert.All(info.SlotTokens, t => Assert.Equal(0UL, t));
    }

    [Fact]
    public async Task StartErrorsAreOneLineNamingTheProblem()
    {
        using var dir = new TempDir();
        Placement.PlacementPlanner.Plan(TinyCheckpoint.Config, Placement.PlacementPlanner.LoopbackNodes(2, 1)).Save(dir.File("plan.json"));
        var unknown = await Assert.ThrowsAsync<ArgumentException>(() => ExpertHost.StartAsync(
            new ExpertHostOptions { ModelDir = TinyCheckpoint.Dir, PlanPath = dir.File("plan.json"), NodeId = "expert-5" }));
        Assert.Equal("placement plan has no expert node 'expert-5' (nodes: expert-0, expert-1)", unknown.Message);
        var host = await Assert.ThrowsAsync<ArgumentException>(() => ExpertHost.StartAsync(
            new ExpertHostOptions { ModelDir = TinyCheckpoint.Dir, PlanPath = dir.File("plan.json"), NodeId = "expert-0", Host = "localhost:1" }));
        Assert.Equal("--host 'localhost:1' is not an IP address", host.Message);
        await Assert.ThrowsAsync<FileNotFoundException>(() => ExpertHost.StartAsync(
            new ExpertHostOptions { ModelDir = TinyCheckpoint.Dir, PlanPath = dir.File("missing.json"), NodeId = "expert-0" }));
    }
}
