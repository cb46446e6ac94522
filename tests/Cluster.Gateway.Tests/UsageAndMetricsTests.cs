using System.Net;
using System.Text.Json;
using Cluster.Protos.V1;
using static Cluster.Gateway.Tests.ApiClient;

namespace Cluster.Gateway.Tests;

/// <summary>
/// Each key's usage (<c>/v1/usage</c>, and its series in <c>/metrics</c>) adds up the usage its responses reported,
/// over both APIs, whole and streamed; <c>/metrics</c> is Prometheus text whose histograms and counters match the
/// requests made, with the gRPC port's calls in the same scrape.
/// </summary>
public sealed class UsageAndMetricsTests : IAsyncLifetime
{
    private const uint Cached = 2;
    private KeyedGateway _cluster = null!;

    public async Task InitializeAsync()
    {
        _cluster = await KeyedGateway.StartAsync($"alice {KeyedGateway.AliceKey}\nbob {KeyedGateway.BobKey} rpm=1000 tpm=1000000\n");
        _cluster.Node.CachedPromptTokens = Cached;
    }

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    private sealed record Totals(long Requests, long Prompt, long Cached, long Completion)
    {
        public Totals Add(JsonElement usage) => new(Requests + 1, Prompt + usage.GetProperty("prompt_tokens").GetInt64(),
            Cached + usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt64(), Completion + usage.GetProperty("completion_tokens").GetInt64());
        public Totals Add(Usage usage) => new(Requests + 1, Prompt + usage.PromptTokens, Cached + usage.CachedPromptTokens, Completion + usage.CompletionTokens);
    }

    private async Task<Totals> AliceOverHttpAsync()
    {
        var totals = new Totals(0, 0, 0, 0);
        var messages = new[] { new { role = "user", content = "2+2?" } };
        for (int i = 0; i < 3; i++)
        {
            Reply whole = await _cluster.ChatAsync(KeyedGateway.AliceKey, new { model = "tiny-test", messages });
            Assert.Equal(HttpStatusCode.OK, whole.Status);
            totals = totals.Add(whole.Body.GetProperty("usage"));
        }
        using var stream = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = KeyedGateway.JsonContent(new { model = "tiny-test", messages, stream = true, stream_options = new { include_usage = true } }),
        };
        stream.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", KeyedGateway.AliceKey);
        var (streamed, response) = await _cluster.SendWithHeadersAsync(stream);
        response.Dispose();
        string[] events = [.. streamed.Text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..])];
        Assert.Equal("[DONE]", events[^1]);
        totals = totals.Add(JsonDocument.Parse(events[^2]).RootElement.GetProperty("usage"));
        return totals;
    }

    private async Task<Totals> BobOverGrpcAsync()
    {
        var totals = new Totals(0, 0, 0, 0);
        var request = new GenerateRequest { PromptTokenIds = { 0, 1, 4, 4 } };
        totals = totals.Add((await _cluster.Inference.GenerateAsync(request, KeyedGateway.WithKey(KeyedGateway.BobKey)).ResponseAsync).Usage);
        using var call = _cluster.Inference.GenerateStream(request, KeyedGateway.WithKey(KeyedGateway.BobKey));
        GenerateChunk? last = null;
        while (await call.ResponseStream.MoveNext(CancellationToken.None)) last = call.ResponseStream.Current;
        return totals.Add(last!.Usage);
    }

    private async Task<Totals> UsageAsync(string key)
    {
        Reply reply = await _cluster.GetAsync("/v1/usage", key);
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        JsonElement u = reply.Body;
        Assert.Equal("usage", u.GetProperty("object").GetString());
        Assert.Equal(u.GetProperty("prompt_tokens").GetInt64() + u.GetProperty("completion_tokens").GetInt64(), u.GetProperty("total_tokens").GetInt64());
        return new Totals(u.GetProperty("requests").GetInt64(), u.GetProperty("prompt_tokens").GetInt64(),
            u.GetProperty("cached_prompt_tokens").GetInt64(), u.GetProperty("completion_tokens").GetInt64());
    }

    private async Task<PrometheusScrape> ScrapeAsync()
    {
        using var response = await _cluster.Http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        return PrometheusScrape.Parse(await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Usage_per_key_equals_the_usage_its_responses_reported()
    {
        Totals alice = await AliceOverHttpAsync();
        Totals bob = await BobOverGrpcAsync();
        Assert.True(alice.Cached > 0 && bob.Cached > 0 && alice.Completion > 0);
        Assert.Equal(alice, await UsageAsync(KeyedGateway.AliceKey));
        Assert.Equal(bob, await UsageAsync(KeyedGateway.BobKey));

        PrometheusScrape scrape = await ScrapeAsync();
        foreach (var (name, t) in new[] { ("alice", alice), ("bob", bob) })
        {
            Assert.Equal(t.Requests, scrape.Value("cluster_gateway_key_requests_total", ("key", name)));
            Assert.Equal(t.Prompt, scrape.Value("cluster_gateway_tokens_total", ("key", name), ("kind", "prompt")));
            Assert.Equal(t.Cached, scrape.Value("cluster_gateway_tokens_total", ("key", name), ("kind", "cached")));
            Assert.Equal(t.Completion, scrape.Value("cluster_gateway_tokens_total", ("key", name), ("kind", "completion")));
        }
    }

    [Fact]
    public async Task Metrics_are_prometheus_text_whose_counts_match_the_requests_made()
    {
        PrometheusScrape before = await ScrapeAsync();
        Totals alice = await AliceOverHttpAsync();
        Totals bob = await BobOverGrpcAsync();
        // Refused at the door, refused as invalid, failed by the node after 3 tokens.
        Assert.Equal(HttpStatusCode.Unauthorized, (await _cluster.ChatAsync(null)).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await _cluster.ChatAsync(KeyedGateway.AliceKey, new { model = "tiny-test", messages = Array.Empty<object>() })).Status);
        var failing = await _cluster.ChatAsync(KeyedGateway.AliceKey, new { model = "tiny-test", prompt = new[] { 0, (int)ScriptedNode.FailMidStream } });
        Reply failed = await SendCompletionAsync(new { model = "tiny-test", prompt = new[] { 0, (int)ScriptedNode.FailMidStream } });
        Assert.Equal(HttpStatusCode.InternalServerError, failed.Status);

        PrometheusScrape after = await ScrapeAsync();
        double Delta(string name, params (string, string)[] labels) => after.Value(name, labels) - before.Value(name, labels);
        long served = alice.Requests + bob.Requests;
        Assert.Equal(alice.Requests, Delta("cluster_gateway_requests_total", ("api", "http"), ("code", "ok")));
        Assert.Equal(bob.Requests, Delta("cluster_gateway_requests_total", ("api", "grpc"), ("code", "ok")));
        Assert.Equal(1, Delta("cluster_gateway_requests_total", ("api", "http"), ("code", "unauthenticated")));
        // The chat body without messages, and the chat body with a prompt instead of messages.
        Assert.Equal(2, Delta("cluster_gateway_requests_total", ("api", "http"), ("code", "invalid_request")));
        Assert.Equal(1, Delta("cluster_gateway_requests_total", ("api", "http"), ("code", "internal")));
        Assert.Equal(HttpStatusCode.BadRequest, failing.Status);

        // One observation per request a node took: the served ones and the one that failed after its first tokens.
        foreach (string h in new[] { "cluster_gateway_time_to_first_token_seconds", "cluster_gateway_request_duration_seconds", "cluster_gateway_time_per_output_token_seconds" })
            Assert.Equal(served + 1, after.Histogram(h) - before.Histogram(h));
        Assert.Equal(0, after.Value("cluster_gateway_queued_requests"));
        Assert.Equal(0, after.Value("cluster_gateway_in_flight_requests"));
        Assert.Equal("gauge", after.Types["cluster_gateway_queued_requests"]);
        Assert.Equal(alice.Completion + 3, Delta("cluster_gateway_tokens_total", ("key", "alice"), ("kind", "completion")));

        // The gateway's calls to its node, by outcome: the errors by node.
        string node = _cluster.Node.Endpoint;
        Assert.Equal(served, Delta("cluster_gateway_node_calls_total", ("node", node), ("method", "Generate"), ("code", "OK")));
        Assert.Equal(1, Delta("cluster_gateway_node_calls_total", ("node", node), ("method", "Generate"), ("code", "Internal")));

        // The gRPC port's calls, in the same scrape.
        Assert.Equal(1, Delta("cluster_grpc_server_handled_total", ("grpc_method", "/cluster.v1.Inference/Generate"), ("grpc_code", "OK")));
        Assert.Equal(1, Delta("cluster_grpc_server_handled_total", ("grpc_method", "/cluster.v1.Inference/GenerateStream"), ("grpc_code", "OK")));
    }

    private async Task<Reply> SendCompletionAsync(object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = KeyedGateway.JsonContent(body) };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", KeyedGateway.AliceKey);
        var (reply, response) = await _cluster.SendWithHeadersAsync(request);
        response.Dispose();
        return reply;
    }
}
