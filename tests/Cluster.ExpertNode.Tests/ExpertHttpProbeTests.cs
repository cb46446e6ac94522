using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Transport;
using Grpc.Health.V1;

namespace Cluster.ExpertNode.Tests;

/// <summary>
/// The expert node's kubelet probes on its HTTP port beside /metrics: /readyz follows grpc.health.v1 (200 while
/// SERVING, 503 from the moment the node turns NOT_SERVING to drain), /healthz is 200 throughout.
/// </summary>
public sealed class ExpertHttpProbeTests
{
    [Fact]
    public async Task ReadyzFollowsTheGrpcHealthStatus()
    {
        using var dir = new TempDir();
        PlacementPlanner.Plan(TinyCheckpoint.Config, PlacementPlanner.LoopbackNodes(1, 1)).Save(dir.File("plan.json"));
        int httpPort = FreePort();
        await using ExpertHost host = await ExpertHost.StartAsync(new ExpertHostOptions
        {
            ModelDir = TinyCheckpoint.Dir, PlanPath = dir.File("plan.json"), NodeId = "expert-0", HttpPort = httpPort,
        });
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
        using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{host.Port}");
        var health = new Health.HealthClient(channel.Invoker);

        Assert.Equal((HttpStatusCode.OK, "ready"), await GetAsync(http, "/readyz"));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);

        // What shutdown does first (DisposeAsync, and RunAsync when its token fires).
        host.Health.MarkNotServing();
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "not ready"), await GetAsync(http, "/readyz"));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
        Assert.Equal((HttpStatusCode.OK, "ok"), await GetAsync(http, "/healthz"));

        host.Health.MarkServing();
        Assert.Equal((HttpStatusCode.OK, "ready"), await GetAsync(http, "/readyz"));
        // The probes sit beside the metrics, which still answer.
        Assert.Contains("cluster_", await http.GetStringAsync("/metrics"));
    }

    private static async Task<(HttpStatusCode, string)> GetAsync(HttpClient http, string path)
    {
        using HttpResponseMessage response = await http.GetAsync(path);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (response.StatusCode, body.RootElement.GetProperty("status").GetString()!);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
