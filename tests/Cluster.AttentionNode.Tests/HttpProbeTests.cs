using System.Net;
using System.Text.Json;
using Cluster.ExpertNode.Host;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Grpc.Health.V1;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// HTTP probes on the node's HTTP port (for probes that cannot speak gRPC, or not over TLS): /healthz
/// answers 200 from the moment the port opens, /readyz 503 while the node waits for its expert node and loads, 200
/// once grpc.health.v1 says SERVING, and 503 again as soon as a drain begins, while a running request finishes.
/// </summary>
public sealed class HttpProbeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-http-probe-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public async Task ReadyzIsNotReadyUntilTheExpertNodeAnswersAndTheModelIsLoaded()
    {
        int[] ports = Cli.Supervision.FreePorts.Take(3);
        int httpPort = ports[2];
        var node = WaitingForExpert.Start(_dir, ports[0], ports[1], httpPort);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
        Assert.Equal((HttpStatusCode.OK, "ok"), await FirstAnswerAsync(http, "/healthz"));
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "not ready"), await GetAsync(http, "/readyz"));
        Assert.False(node.Starting.IsCompleted);

        await using ExpertHost expert = await node.StartExpertAsync();
        await using AttentionHost host = await node.Starting.WaitAsync(TimeSpan.FromSeconds(120));
        Assert.Equal((HttpStatusCode.OK, "ready"), await GetAsync(http, "/readyz"));
        Assert.Equal((HttpStatusCode.OK, "ok"), await GetAsync(http, "/healthz"));
    }

    [Fact]
    public async Task ReadyzTurnsNotReadyWhenTheDrainBeginsAsGrpcHealthDoes()
    {
        AttentionHost host = await AttentionHost.StartAsync(new AttentionOptions
        {
            ModelDir = TinyModel.Directory, NodeId = "attention-probe-drain", HttpPort = 0, DrainTimeout = TimeSpan.FromSeconds(60),
        });
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{host.HttpPort}") };
        using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{host.Port}");
        var health = new Health.HealthClient(channel.Invoker);
        Assert.Equal((HttpStatusCode.OK, "ready"), await GetAsync(http, "/readyz"));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);

        var client = new Protos.V1.AttentionService.AttentionServiceClient(channel.Invoker);
        using var running = client.Generate(new TokenGenerateRequest { PromptTokenIds = { TinyModel.Prompt(3, 6) }, Sampling = new() { MaxTokens = 400 } });
        Assert.True(await running.ResponseStream.MoveNext());
        Task stopping = host.DisposeAsync().AsTask();
        try
        {
            Assert.Equal((HttpStatusCode.ServiceUnavailable, "not ready"), await GetAsync(http, "/readyz"));
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
            // Draining is not dead: the liveness probe must not restart a node finishing its requests.
            Assert.Equal((HttpStatusCode.OK, "ok"), await GetAsync(http, "/healthz"));
            Assert.False(stopping.IsCompleted, "the node stopped while a request was running");
        }
        finally
        {
            while (await running.ResponseStream.MoveNext()) { }
            await stopping.WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    private static async Task<(HttpStatusCode, string)> GetAsync(HttpClient http, string path)
    {
        using HttpResponseMessage response = await http.GetAsync(path);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (response.StatusCode, body.RootElement.GetProperty("status").GetString()!);
    }

    /// <summary>Asks until the port answers (it opens before the node waits for its experts).</summary>
    private static async Task<(HttpStatusCode, string)> FirstAnswerAsync(HttpClient http, string path)
    {
        DateTime until = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try { return await GetAsync(http, path); }
            catch (HttpRequestException) when (DateTime.UtcNow < until) { await Task.Delay(50); }
        }
    }
}
