using System.Net;
using System.Text.Json;
using Cluster.Gateway.Grpc;
using Cluster.Protos.V1;
using Cluster.Transport;
using static Cluster.Gateway.Tests.ApiClient;
using Grpc.Core;

namespace Cluster.Gateway.Tests;

/// <summary>Admission by whole context against scripted nodes' cache sizes: waiting in order, the queue bound, refusals.</summary>
public sealed class AdmissionTests
{
    private static ServedModel Model => TestModel.Served;

    private static HttpClient Client(GatewayHost gateway) => new() { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };

    // 15 prompt tokens + 17 = 32 tokens: two 16-token blocks.
    private static string HeldRequest(int first) => JsonSerializer.Serialize(new
    {
        model = "tiny-test",
        prompt = (int[])[.. Enumerable.Range(first, 14), (int)ScriptedNode.Held],
        max_tokens = 17,
    });

    [Fact]
    public async Task With_room_for_two_contexts_four_requests_run_two_at_a_time_and_all_complete()
    {
        await using ScriptedNode node = await ScriptedNode.StartAsync(Model, blocks: 4);
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([node.Endpoint]));
        using HttpClient http = Client(gateway);

        var requests = Enumerable.Range(0, 4).Select(i => PostRawAsync(http, "/v1/completions", HeldRequest(1000 + 100 * i))).ToList();
        await Until.TrueAsync(() => node.Requests == 2 && gateway.Router.Admission.Queued == 2,
            () => $"node has {node.Requests}, gateway queues {gateway.Router.Admission.Queued}");
        Assert.Equal(4, gateway.Router.Nodes[0].ReservedBlocks);
        Assert.DoesNotContain(requests, r => r.IsCompleted);

        node.OpenGate();
        foreach (var r in requests)
        {
            var reply = await r;
            Assert.Equal(HttpStatusCode.OK, reply.Status);
            Assert.Equal(node.ScriptLength, reply.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        }
        Assert.Equal(4, node.Requests);
        Assert.Equal(0, node.Refused);
        Assert.Equal(0, gateway.Router.Admission.Queued);
    }

    [Fact]
    public async Task Beyond_the_queue_bound_a_request_is_429()
    {
        await using ScriptedNode node = await ScriptedNode.StartAsync(Model, blocks: 2);
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([node.Endpoint]) with { MaxQueuedRequests = 1 });
        using HttpClient http = Client(gateway);

        var running = PostRawAsync(http, "/v1/completions", HeldRequest(1000));
        await Until.TrueAsync(() => node.Requests == 1, () => $"node has {node.Requests}");
        var waiting = PostRawAsync(http, "/v1/completions", HeldRequest(2000));
        await Until.TrueAsync(() => gateway.Router.Admission.Queued == 1, () => $"gateway queues {gateway.Router.Admission.Queued}");

        var error = AssertError(await PostRawAsync(http, "/v1/completions", HeldRequest(3000)), HttpStatusCode.TooManyRequests);
        Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        Assert.Contains("at most 1", error.GetProperty("message").GetString());

        node.OpenGate();
        Assert.Equal(HttpStatusCode.OK, (await running).Status);
        Assert.Equal(HttpStatusCode.OK, (await waiting).Status);
    }

    [Fact]
    public async Task A_request_no_node_can_ever_hold_is_400_with_the_numbers()
    {
        await using ScriptedNode node = await ScriptedNode.StartAsync(Model, blocks: 2);
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([node.Endpoint]));
        using HttpClient http = Client(gateway);

        // 2 + 100 tokens need 7 blocks of 16; the node has 2.
        var reply = await PostAsync(http, "/v1/completions", new { model = "tiny-test", prompt = new[] { 0, 1 }, max_tokens = 100 });
        string message = AssertError(reply, HttpStatusCode.BadRequest).GetProperty("message").GetString()!;
        Assert.Contains("7 cache blocks of 16 tokens", message);
        Assert.Contains("2 prompt + 100 completion tokens", message);
        Assert.Contains("at most 2 blocks", message);
        Assert.Equal(0, node.Requests);

        using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{gateway.GrpcPort}");
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            new Inference.InferenceClient(channel.Invoker).GenerateAsync(new GenerateRequest { PromptTokenIds = { 0, 1 }, Sampling = new SamplingParams { MaxTokens = 100 } }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);

        // Exactly the node's two blocks fit.
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(http, "/v1/completions", new { model = "tiny-test", prompt = new[] { 0, 1 }, max_tokens = 30 })).Status);
    }

    [Fact]
    public async Task When_every_node_refuses_for_room_the_request_waits_at_the_head_until_one_ends()
    {
        await using ScriptedNode a = await ScriptedNode.StartAsync(Model), b = await ScriptedNode.StartAsync(Model);
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([a.Endpoint, b.Endpoint]));
        using HttpClient http = Client(gateway);

        var held = PostRawAsync(http, "/v1/completions", HeldRequest(1000));
        await Until.TrueAsync(() => a.Requests + b.Requests == 1, () => $"nodes have {a.Requests} and {b.Requests}");
        // Both caches are fuller than the gateway's ledger knows (another gateway's requests, say).
        a.Full = b.Full = true;
        var waiting = PostRawAsync(http, "/v1/completions", "{\"model\":\"tiny-test\",\"prompt\":[0,1]}");
        await Until.TrueAsync(() => a.Refused > 0 && b.Refused > 0 && gateway.Router.Admission.Queued == 1,
            () => $"refusals {a.Refused} and {b.Refused}, gateway queues {gateway.Router.Admission.Queued}");
        Assert.False(waiting.IsCompleted);

        // The held request ends and frees its node, which now has room.
        a.Full = b.Full = false;
        a.OpenGate();
        b.OpenGate();
        Assert.Equal(HttpStatusCode.OK, (await held).Status);
        var reply = await waiting;
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.Equal(a.ScriptLength, reply.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(0, gateway.Router.Admission.InFlight);
    }

    [Fact]
    public async Task A_client_that_leaves_while_queued_leaves_the_queue()
    {
        await using ScriptedNode node = await ScriptedNode.StartAsync(Model, blocks: 2);
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([node.Endpoint]));
        using HttpClient http = Client(gateway);
        using var leave = new CancellationTokenSource();

        var running = PostRawAsync(http, "/v1/completions", HeldRequest(1000));
        await Until.TrueAsync(() => node.Requests == 1, () => $"node has {node.Requests}");
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(HeldRequest(2000), System.Text.Encoding.UTF8, "application/json") };
        var leaving = http.SendAsync(request, leave.Token);
        await Until.TrueAsync(() => gateway.Router.Admission.Queued == 1, () => $"gateway queues {gateway.Router.Admission.Queued}");
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);
        await Until.TrueAsync(() => gateway.Router.Admission.Queued == 0, () => $"gateway queues {gateway.Router.Admission.Queued}");

        node.OpenGate();
        Assert.Equal(HttpStatusCode.OK, (await running).Status);
        Assert.Equal(1, node.Requests);
    }

    [Fact]
    public async Task A_request_without_max_tokens_gets_the_default_capped_by_the_context()
    {
        await using ScriptedNode node = await ScriptedNode.StartAsync(Model);
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([node.Endpoint]) with { DefaultMaxTokens = 100 });
        using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{gateway.GrpcPort}");

        await new Inference.InferenceClient(channel.Invoker).GenerateAsync(new GenerateRequest { PromptTokenIds = { 0, 1 } }).ResponseAsync;
        var longPrompt = new GenerateRequest();
        longPrompt.PromptTokenIds.Add(Enumerable.Range(1000, 450).Select(i => (uint)i));
        await new Inference.InferenceClient(channel.Invoker).GenerateAsync(longPrompt).ResponseAsync;
        using HttpClient http = Client(gateway);
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(http, "/v1/chat/completions", new { model = "tiny-test", messages = new[] { new { role = "user", content = "hi" } } })).Status);

        var received = node.Received;
        Assert.Equal(100u, received[0].Sampling.MaxTokens);
        Assert.Equal((uint)(ClusterFixture.MaxModelLen - 450), received[1].Sampling.MaxTokens);
        Assert.Equal(100u, received[2].Sampling.MaxTokens);
    }
}
