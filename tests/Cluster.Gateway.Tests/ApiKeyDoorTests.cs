using System.Net;
using Cluster.Gateway.Security;
using Cluster.Protos.V1;
using Grpc.Core;
using Grpc.Health.V1;
using static Cluster.Gateway.Tests.ApiClient;

namespace Cluster.Gateway.Tests;

/// <summary>
/// With keys configured, both APIs serve only callers presenting one: 401 in OpenAI's shape on HTTP, UNAUTHENTICATED
/// on gRPC; the probes, /metrics, gRPC health stay open. Without keys the gateway is open as before.
/// </summary>
public sealed class ApiKeyDoorTests : IAsyncLifetime
{
    private KeyedGateway _cluster = null!;

    public async Task InitializeAsync() =>
        _cluster = await KeyedGateway.StartAsync($"alice {KeyedGateway.AliceKey}\nbob {KeyedGateway.BobKey}\n");

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    private static void AssertInvalidKey(Reply reply)
    {
        JsonElementAssert(AssertError(reply, HttpStatusCode.Unauthorized));
        static void JsonElementAssert(System.Text.Json.JsonElement error)
        {
            Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        }
    }

    [Fact]
    public async Task Http_without_a_key_or_with_a_wrong_one_is_401_in_openais_shape()
    {
        AssertInvalidKey(await _cluster.ChatAsync(null));
        AssertInvalidKey(await _cluster.ChatAsync("sk-nobody-0123456789abcdef"));
        AssertInvalidKey(await _cluster.ChatAsync(KeyedGateway.AliceKey + "x"));
        AssertInvalidKey(await _cluster.GetAsync("/v1/models", null));
        AssertInvalidKey(await _cluster.GetAsync("/v1/usage", null));
        AssertInvalidKey(await _cluster.GetAsync("/cluster/status", null));
        // Deny by default: a path that does not exist says nothing before the key.
        AssertInvalidKey(await _cluster.GetAsync("/v1/nothing-here", null));

        using var basic = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        basic.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic", KeyedGateway.AliceKey);
        var (reply, response) = await _cluster.SendWithHeadersAsync(basic);
        using (response)
        {
            AssertInvalidKey(reply);
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        }
        Assert.Equal(0, _cluster.Node.Requests);
    }

    [Fact]
    public async Task Http_with_a_key_is_served()
    {
        Reply chat = await _cluster.ChatAsync(KeyedGateway.AliceKey);
        Assert.True(chat.Status == HttpStatusCode.OK, chat.Text);
        Assert.Equal(ScriptedNode.Answer, Content(chat.Body));
        Assert.Equal(HttpStatusCode.OK, (await _cluster.GetAsync("/v1/models", KeyedGateway.BobKey)).Status);
        Reply usage = await _cluster.GetAsync("/v1/usage", KeyedGateway.BobKey);
        Assert.Equal("bob", usage.Body.GetProperty("key").GetString());
        // The scheme is case-insensitive (RFC 9110).
        using var lower = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        lower.Headers.TryAddWithoutValidation("Authorization", "bearer " + KeyedGateway.AliceKey);
        var (reply, response) = await _cluster.SendWithHeadersAsync(lower);
        response.Dispose();
        Assert.Equal(HttpStatusCode.OK, reply.Status);
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    [InlineData("/metrics")]
    public async Task Probes_and_metrics_need_no_key(string path)
    {
        Reply reply = await _cluster.GetAsync(path, null);
        Assert.True(reply.Status == HttpStatusCode.OK, $"{path}: {(int)reply.Status} {reply.Text}");
    }

    [Fact]
    public async Task Grpc_without_a_key_or_with_a_wrong_one_is_unauthenticated()
    {
        var request = new GenerateRequest { PromptTokenIds = { 0, 1 } };
        foreach (string? key in new[] { null, "sk-nobody-0123456789abcdef" })
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => _cluster.Inference.GenerateAsync(request, KeyedGateway.WithKey(key)).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
            Assert.Contains("API key", e.Status.Detail);
            e = await Assert.ThrowsAsync<RpcException>(() => _cluster.Inference.ListModelsAsync(new ListModelsRequest(), KeyedGateway.WithKey(key)).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
            using var stream = _cluster.Inference.GenerateStream(request, KeyedGateway.WithKey(key));
            e = await Assert.ThrowsAsync<RpcException>(() => stream.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
        }
        Assert.Equal(0, _cluster.Node.Requests);
    }

    [Fact]
    public async Task Grpc_with_a_key_is_served_and_health_needs_none()
    {
        GenerateResponse response = await _cluster.Inference.GenerateAsync(new GenerateRequest { PromptTokenIds = { 0, 1 } }, KeyedGateway.WithKey(KeyedGateway.BobKey)).ResponseAsync;
        Assert.Equal("stop", response.FinishReason);
        Assert.Equal("tiny-test", (await _cluster.Inference.ListModelsAsync(new ListModelsRequest(), KeyedGateway.WithKey(KeyedGateway.AliceKey)).ResponseAsync).Models[0].Id);
        var health = await new Health.HealthClient(_cluster.Grpc.Invoker).CheckAsync(new HealthCheckRequest()).ResponseAsync;
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
    }

    [Fact]
    public async Task Without_keys_the_gateway_is_open_and_charges_the_anonymous_account()
    {
        await using KeyedGateway open = await KeyedGateway.StartAsync(null);
        Assert.Equal(HttpStatusCode.OK, (await open.ChatAsync(null)).Status);
        Assert.Equal("stop", (await open.Inference.GenerateAsync(new GenerateRequest { PromptTokenIds = { 0, 1 } }).ResponseAsync).FinishReason);
        Reply usage = await open.GetAsync("/v1/usage", null);
        Assert.Equal(ApiKey.AnonymousName, usage.Body.GetProperty("key").GetString());
        Assert.Equal(2, usage.Body.GetProperty("requests").GetInt64());
    }
}
