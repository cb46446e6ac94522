using System.Net;
using Cluster.Gateway.Grpc;
using Cluster.Protos.V1;
using Grpc.Core;
using Microsoft.Extensions.Time.Testing;
using static Cluster.Gateway.Tests.ApiClient;

namespace Cluster.Gateway.Tests;

/// <summary>
/// A key's requests and tokens per minute, on the gateway's fake clock: past the limit 429 in OpenAI's shape with
/// Retry-After (RESOURCE_EXHAUSTED with a retry-after trailer on gRPC), served again once the clock has moved that
/// far; one key's limit never touches another's.
/// </summary>
public sealed class RateLimitTests
{
    private static readonly HttpMethod Post = HttpMethod.Post;

    private static Task<(Reply Reply, TimeSpan? RetryAfter)> ChatAsync(KeyedGateway cluster, string key) =>
        SendAsync(cluster, "/v1/chat/completions", key, new { model = "tiny-test", messages = new[] { new { role = "user", content = "2+2?" } } });

    private static async Task<(Reply Reply, TimeSpan? RetryAfter)> SendAsync(KeyedGateway cluster, string path, string key, object body)
    {
        using var request = new HttpRequestMessage(Post, path) { Content = KeyedGateway.JsonContent(body) };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        var (reply, response) = await cluster.SendWithHeadersAsync(request);
        using (response) return (reply, response.Headers.RetryAfter?.Delta);
    }

    private static TimeSpan AssertLimited(Reply reply, TimeSpan? retryAfter)
    {
        JsonElementIs(AssertError(reply, HttpStatusCode.TooManyRequests));
        Assert.NotNull(retryAfter);
        Assert.True(retryAfter >= TimeSpan.FromSeconds(1));
        return retryAfter!.Value;

        static void JsonElementIs(System.Text.Json.JsonElement error)
        {
            Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
            Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        }
    }

    [Fact]
    public async Task Requests_per_minute_refuse_with_retry_after_and_refill_on_the_clock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using KeyedGateway cluster = await KeyedGateway.StartAsync(
            $"alice {KeyedGateway.AliceKey} rpm=2\nbob {KeyedGateway.BobKey}\n", time);
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(cluster, KeyedGateway.AliceKey)).Reply.Status);
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(cluster, KeyedGateway.AliceKey)).Reply.Status);
        var (reply, retryAfter) = await ChatAsync(cluster, KeyedGateway.AliceKey);
        TimeSpan wait = AssertLimited(reply, retryAfter);
        // Two a minute: one is back 30 s after the first went.
        Assert.Equal(TimeSpan.FromSeconds(30), wait);
        Assert.Contains("alice", reply.Body.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(2, cluster.Node.Requests);

        // Another key is not limited by alice's.
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(cluster, KeyedGateway.BobKey)).Reply.Status);

        // gRPC draws on the same budget.
        var e = await Assert.ThrowsAsync<RpcException>(() => cluster.Inference.GenerateAsync(new GenerateRequest { PromptTokenIds = { 0, 1 } }, KeyedGateway.WithKey(KeyedGateway.AliceKey)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Equal("30", e.Trailers.GetValue(InferenceService.RetryAfterTrailer));
        Assert.Equal("30000", e.Trailers.GetValue("grpc-retry-pushback-ms"));

        time.Advance(wait - TimeSpan.FromSeconds(1));
        var early = await ChatAsync(cluster, KeyedGateway.AliceKey);
        AssertLimited(early.Reply, early.RetryAfter);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(cluster, KeyedGateway.AliceKey)).Reply.Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await ChatAsync(cluster, KeyedGateway.AliceKey)).Reply.Status);
        Assert.Equal(4, cluster.Node.Requests);
    }

    [Fact]
    public async Task Tokens_per_minute_charge_prompt_and_completion_and_refill_on_the_clock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using KeyedGateway cluster = await KeyedGateway.StartAsync($"alice {KeyedGateway.AliceKey} tpm=60\n", time);
        // The scripted answer is the same every time, so every request costs the same.
        var body = new { model = "tiny-test", prompt = new[] { 0, 1, 4 }, max_tokens = 64 };
        var (reply, retryAfter) = await SendAsync(cluster, "/v1/completions", KeyedGateway.AliceKey, body);
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
        int prompt = reply.Body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        int completion = reply.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.True(prompt + completion < 60, $"{prompt} + {completion} tokens: the test needs several requests a minute");

        // A request is admitted while its prompt is left; its completion may overrun the budget into debt.
        long left = 60 - prompt - completion;
        int expected = 1, served = 1;
        while (left >= prompt)
        {
            left -= prompt + completion;
            expected++;
        }
        while (true)
        {
            (reply, retryAfter) = await SendAsync(cluster, "/v1/completions", KeyedGateway.AliceKey, body);
            if (reply.Status != HttpStatusCode.OK) break;
            Assert.True(++served <= expected, $"served {served}, more than {expected}");
        }
        Assert.Equal(expected, served);
        TimeSpan wait = AssertLimited(reply, retryAfter);
        // One token a second comes back: the prompt's worth after what is owed.
        Assert.Equal(TimeSpan.FromSeconds(prompt - left), wait);

        time.Advance(wait - TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.TooManyRequests, (await SendAsync(cluster, "/v1/completions", KeyedGateway.AliceKey, body)).Reply.Status);
        time.Advance(TimeSpan.FromSeconds(1));
        (reply, _) = await SendAsync(cluster, "/v1/completions", KeyedGateway.AliceKey, body);
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
        Assert.Equal(expected + 1, cluster.Node.Requests);

        // A prompt larger than a whole minute's budget can never be served: 429 without Retry-After.
        var huge = new { model = "tiny-test", prompt = Enumerable.Repeat(4, 61).ToArray(), max_tokens = 1 };
        (reply, retryAfter) = await SendAsync(cluster, "/v1/completions", KeyedGateway.AliceKey, huge);
        Assert.Contains("more than", AssertError(reply, HttpStatusCode.TooManyRequests).GetProperty("message").GetString());
        Assert.Null(retryAfter);
    }
}
