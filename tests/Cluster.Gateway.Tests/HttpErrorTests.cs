using System.Net;
using System.Text;
using System.Text.Json;
using static Cluster.Gateway.Tests.ApiClient;

namespace Cluster.Gateway.Tests;

[Collection("cluster")]
public class HttpErrorTests(ClusterFixture cluster)
{
    private HttpClient Http => cluster.Http;

    private static string ChatJson(string fields) =>
        "{\"model\":\"tiny-test\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2" + (fields.Length > 0 ? "," + fields : "") + "}";

    [Theory]
    [InlineData("\"temperature\":\"hot\"", "temperature")]
    [InlineData("\"temperature\":2.5", "temperature")]
    [InlineData("\"top_p\":0", "top_p")]
    [InlineData("\"top_p\":1.5", "top_p")]
    [InlineData("\"top_k\":129281", "top_k")]
    [InlineData("\"top_k\":-2", "top_k")]
    [InlineData("\"n\":2", "n")]
    [InlineData("\"logprobs\":true,\"top_logprobs\":21", "top_logprobs")]
    [InlineData("\"top_logprobs\":2", "top_logprobs")]
    [InlineData("\"response_format\":{\"type\":\"json_object\"}", "response_format")]
    [InlineData("\"logprobs\":\"yes\"", "logprobs")]
    [InlineData("\"stream\":1", "stream")]
    [InlineData("\"stream_options\":{\"include_usage\":true}", "stream_options")]
    [InlineData("\"stream\":true,\"stream_options\":{\"include_usage\":\"no\"}", "stream_options.include_usage")]
    [InlineData("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop")]
    [InlineData("\"stop\":[\"\"]", "stop")]
    [InlineData("\"stop\":7", "stop")]
    [InlineData("\"seed\":1.5", "seed")]
    [InlineData("\"max_completion_tokens\":0", "max_completion_tokens")]
    [InlineData("\"presence_penalty\":0.5", "presence_penalty")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", "tools")]
    public async Task Invalid_chat_fields_are_400_naming_the_field(string fields, string param)
    {
        var reply = await PostRawAsync(Http, "/v1/chat/completions", ChatJson(fields));
        var error = AssertError(reply, HttpStatusCode.BadRequest, param);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains(param.Split('.')[^1], error.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("{\"model\":\"tiny-test\",\"max_tokens\":2}", "messages")]
    [InlineData("{\"model\":\"tiny-test\",\"messages\":[]}", "messages")]
    [InlineData("{\"model\":\"tiny-test\",\"messages\":\"hi\"}", "messages")]
    [InlineData("{\"model\":\"tiny-test\",\"messages\":[{\"role\":\"robot\",\"content\":\"hi\"}]}", "messages")]
    [InlineData("{\"model\":\"tiny-test\",\"messages\":[{\"content\":\"hi\"}]}", "messages")]
    [InlineData("{\"model\":\"tiny-test\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model")]
    [InlineData("{\"model\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model")]
    public async Task Missing_or_bad_messages_and_model_are_400(string json, string param)
    {
        AssertError(await PostRawAsync(Http, "/v1/chat/completions", json), HttpStatusCode.BadRequest, param);
    }

    [Theory]
    [InlineData("{\"model\":\"tiny-test\"}", "prompt")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":\"\"}", "prompt")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":[]}", "prompt")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":[0,129280]}", "prompt")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":[0,-1]}", "prompt")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":[\"a\",\"b\"]}", "prompt")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":{}}", "prompt")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":\"hi\",\"echo\":true}", "echo")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":\"hi\",\"suffix\":\"x\"}", "suffix")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":\"hi\",\"logprobs\":21}", "logprobs")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":\"hi\",\"max_tokens\":-3}", "max_tokens")]
    [InlineData("{\"model\":\"tiny-test\",\"prompt\":\"hi\",\"best_of\":3}", "best_of")]
    public async Task Invalid_completion_fields_are_400_naming_the_field(string json, string param)
    {
        AssertError(await PostRawAsync(Http, "/v1/completions", json), HttpStatusCode.BadRequest, param);
    }

    [Theory]
    [InlineData("{\"model\":")]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("[1,2]")]
    [InlineData("\"text\"")]
    public async Task Malformed_or_non_object_bodies_are_400(string json)
    {
        AssertError(await PostRawAsync(Http, "/v1/chat/completions", json), HttpStatusCode.BadRequest);
        AssertError(await PostRawAsync(Http, "/v1/completions", json), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task An_unknown_model_is_404()
    {
        var reply = await PostRawAsync(Http, "/v1/completions", "{\"model\":\"gpt-4\",\"prompt\":\"hi\"}");
        var error = AssertError(reply, HttpStatusCode.NotFound, "model");
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        Assert.Contains("gpt-4", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task A_prompt_too_long_for_the_context_is_400_with_the_numbers()
    {
        var reply = await PostRawAsync(Http, "/v1/completions", "{\"model\":\"tiny-test\",\"prompt\":[0,1,2],\"max_tokens\":510}");
        var error = AssertError(reply, HttpStatusCode.BadRequest, "prompt");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        string message = error.GetProperty("message").GetString()!;
        Assert.Contains("512", message);
        Assert.Contains("513", message);
        Assert.Contains("510", message);

        // Without max_tokens a chat fills the context, so only a prompt that leaves no room fails.
        string longText = string.Join(' ', Enumerable.Repeat("word", 600));
        reply = await PostAsync(Http, "/v1/chat/completions", new { model = "tiny-test", messages = new[] { new { role = "user", content = longText } } });
        Assert.Equal("context_length_exceeded", AssertError(reply, HttpStatusCode.BadRequest, "messages").GetProperty("code").GetString());

        // Exactly full is admitted.
        using var full = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("{\"model\":\"tiny-test\",\"prompt\":[0,1,2],\"max_tokens\":509,\"stream\":true}", Encoding.UTF8, "application/json"),
        };
        using (var response = await Http.SendAsync(full, HttpCompletionOption.ResponseHeadersRead))
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await cluster.WaitIdleAsync();
    }

    [Fact]
    public async Task Wrong_method_is_405_and_unknown_path_404_in_openai_shape()
    {
        using var get = await Http.GetAsync("/v1/chat/completions");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, get.StatusCode);
        var body = JsonDocument.Parse(await get.Content.ReadAsStringAsync()).RootElement;
        Assert.Contains("GET", body.GetProperty("error").GetProperty("message").GetString());

        using var post = await Http.PostAsync("/v1/embeddings", new StringContent("{}"));
        Assert.Equal(HttpStatusCode.NotFound, post.StatusCode);
        body = JsonDocument.Parse(await post.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("invalid_request_error", body.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task A_body_over_the_limit_is_413()
    {
        string big = "{\"model\":\"tiny-test\",\"prompt\":\"" + new string('a', 1_100_000) + "\"}";
        var reply = await PostRawAsync(Http, "/v1/completions", big);
        AssertError(reply, HttpStatusCode.RequestEntityTooLarge);

        // Chunked, without a Content-Length, is cut off as well.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big))) };
        request.Headers.TransferEncodingChunked = true;
        using var response = await Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task A_full_queue_is_429()
    {
        await using ScriptedNode node = await ScriptedNode.StartAsync(cluster.Gateway.Model);
        // One request in flight per node and no queue in the gateway: the second request has nowhere to wait.
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([node.Endpoint]) with { MaxQueue = 1, MaxQueuedRequests = 0 });
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };
        using var hold = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent($"{{\"model\":\"tiny-test\",\"prompt\":[0,{ScriptedNode.Hang}],\"stream\":true}}", Encoding.UTF8, "application/json"),
        };
        using (var holding = await http.SendAsync(hold, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, holding.StatusCode);
            var error = AssertError(await PostRawAsync(http, "/v1/completions", "{\"model\":\"tiny-test\",\"prompt\":[0,1]}"), HttpStatusCode.TooManyRequests);
            Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        }
        // The held request's place is given back when its client goes away: the gateway has to see the connection
        // close and unwind its call, which on a loaded machine can take well over the 2 s this once allowed.
        var giveUp = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (gateway.Router.Nodes[0].InFlight > 0 && DateTime.UtcNow < giveUp) await Task.Delay(10);
        Assert.Equal(HttpStatusCode.OK, (await PostRawAsync(http, "/v1/completions", "{\"model\":\"tiny-test\",\"prompt\":[0,1]}")).Status);
    }

    [Fact]
    public async Task No_reachable_node_is_503_and_readyz_names_it()
    {
        string dead = $"127.0.0.1:{DeadPort()}";
        await using GatewayHost gateway = await ClusterFixture.StartGatewayAsync([dead]);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };
        var error = AssertError(await PostRawAsync(http, "/v1/chat/completions", ChatJson("")), HttpStatusCode.ServiceUnavailable);
        Assert.Contains(dead, error.GetProperty("message").GetString());

        var streamed = await PostRawAsync(http, "/v1/chat/completions", ChatJson("\"stream\":true"));
        AssertError(streamed, HttpStatusCode.ServiceUnavailable);

        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        using var ready = await http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains(dead, await ready.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_node_that_is_down_is_skipped_and_readyz_is_red_until_it_is_back()
    {
        string dead = $"127.0.0.1:{DeadPort()}";
        await using GatewayHost gateway = await ClusterFixture.StartGatewayAsync([dead, cluster.NodeEndpoint]);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };
        for (int i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.OK, (await PostRawAsync(http, "/v1/chat/completions", ChatJson(""))).Status);
        // A node whose statistics cannot be had is never given a request.
        Assert.False(gateway.Router.Nodes[0].State.Usable);
        Assert.Equal(0, gateway.Router.Nodes[0].InFlight);

        using var ready = await http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        var report = JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement;
        var nodes = report.GetProperty("nodes").EnumerateArray().ToDictionary(n => n.GetProperty("endpoint").GetString()!, n => n.GetProperty("status").GetString()!);
        Assert.Equal("SERVING", nodes[cluster.NodeEndpoint]);
        Assert.StartsWith("Unavailable", nodes[dead]);
    }
}
