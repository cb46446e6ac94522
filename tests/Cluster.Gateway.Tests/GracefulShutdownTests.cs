using System.Net;
using System.Text.Json;
using static Cluster.Gateway.Tests.ApiClient;

namespace Cluster.Gateway.Tests;

/// <summary>
/// The gateway's shutdown drains: it stops taking connections, and a request in flight (held by the scripted node)
/// finishes with every token once the node sends them, instead of being cut off when the server stops.
/// </summary>
public sealed class GracefulShutdownTests
{
    [Fact]
    public async Task ARequestInFlightFinishesWhileTheGatewayStops()
    {
        await using ScriptedNode node = await ScriptedNode.StartAsync(TestModel.Served);
        GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([node.Endpoint]) with { DrainTimeout = TimeSpan.FromSeconds(60) });
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };
        string body = JsonSerializer.Serialize(new { model = "tiny-test", prompt = (int[])[.. Enumerable.Range(1000, 14), (int)ScriptedNode.Held], max_tokens = 17 });
        Task<Reply> held = PostRawAsync(http, "/v1/completions", body);
        await Until.TrueAsync(() => node.Requests == 1, () => $"the node has {node.Requests} requests");

        Task stopping = gateway.DisposeAsync().AsTask();
        // A new connection is refused while the one in flight drains.
        var until = DateTime.UtcNow.AddSeconds(30);
        bool refused = false;
        while (!refused && DateTime.UtcNow < until)
        {
            try
            {
                using var fresh = new HttpClient { BaseAddress = http.BaseAddress };
                await fresh.GetAsync("/healthz");
                await Task.Delay(20);
            }
            catch (HttpRequestException) { refused = true; }
        }
        Assert.True(refused, "the gateway kept accepting connections while stopping");
        Assert.False(stopping.IsCompleted, "the gateway stopped with a request in flight");

        node.OpenGate();
        Reply reply = await held;
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.Equal(node.ScriptLength, reply.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        await stopping.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
