using System.Net;
using System.Text.Json;
using Cluster.Gateway.Grpc;
using Cluster.Protos.V1;
using Cluster.Transport;
using static Cluster.Gateway.Tests.ApiClient;
using Grpc.Core;

namespace Cluster.Gateway.Tests;

/// <summary>Prompt tokens a node took from its prefix cache reach the client's usage in every API.</summary>
public sealed class CachedTokensUsageTests : IAsyncLifetime
{
    private const uint Cached = 32;
    private ScriptedNode _node = null!;
    private GatewayHost _gateway = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _node = await ScriptedNode.StartAsync(TestModel.Served);
        _node.CachedPromptTokens = Cached;
        _gateway = await GatewayHost.StartAsync(ClusterFixture.Options([_node.Endpoint]));
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_gateway.HttpPort}") };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _gateway.DisposeAsync();
        await _node.DisposeAsync();
    }

    private static void AssertCached(JsonElement usage)
    {
        Assert.Equal((int)Cached, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal((int)Cached, usage.GetProperty("cached_prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task Http_usage_reports_cached_tokens_whole_and_streamed()
    {
        var messages = new[] { new { role = "user", content = "2+2?" } };
        var whole = await PostAsync(_http, "/v1/chat/completions", new { model = "tiny-test", messages });
        Assert.Equal(HttpStatusCode.OK, whole.Status);
        AssertCached(whole.Body.GetProperty("usage"));

        var events = await StreamAsync(_http, "/v1/chat/completions", new { model = "tiny-test", messages, stream = true, stream_options = new { include_usage = true } });
        Assert.Equal("[DONE]", events[^1]);
        AssertCached(JsonDocument.Parse(events[^2]).RootElement.GetProperty("usage"));

        var text = await PostAsync(_http, "/v1/completions", new { model = "tiny-test", prompt = new[] { 0, 1 } });
        AssertCached(text.Body.GetProperty("usage"));
    }

    [Fact]
    public async Task Grpc_usage_reports_cached_tokens_whole_and_streamed()
    {
        using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{_gateway.GrpcPort}");
        var request = new GenerateRequest { PromptTokenIds = { 0, 1 } };
        Assert.Equal(Cached, (await new Inference.InferenceClient(channel.Invoker).GenerateAsync(request).ResponseAsync).Usage.CachedPromptTokens);

        using var call = new Inference.InferenceClient(channel.Invoker).GenerateStream(request);
        GenerateChunk? last = null;
        while (await call.ResponseStream.MoveNext()) last = call.ResponseStream.Current;
        Assert.Equal(Cached, last!.Usage.CachedPromptTokens);
    }
}
