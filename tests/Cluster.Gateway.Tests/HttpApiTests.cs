using System.Net;
using System.Text.Json;
using Cluster.Protos.V1;
using Cluster.Gateway.Grpc;
using static Cluster.Gateway.Tests.ApiClient;
using Grpc.Core;

namespace Cluster.Gateway.Tests;

[Collection("cluster")]
public class HttpApiTests(ClusterFixture cluster)
{
    private HttpClient Http => cluster.Http;
    private string Model => cluster.ModelId;

    private object Chat(string user, int maxTokens, double temperature = 0, object? extra = null)
    {
        var body = new Dictionary<string, object?>
        {
            ["model"] = Model,
            ["messages"] = new[] { new { role = "system", content = "You are terse." }, new { role = "user", content = user } },
            ["max_tokens"] = maxTokens,
            ["temperature"] = temperature,
        };
        if (extra is not null)
            foreach (JsonProperty p in JsonSerializer.SerializeToElement(extra).EnumerateObject()) body[p.Name] = p.Value;
        return body;
    }

    /// <summary>The same request over gRPC: the token ids the node produced, to check the HTTP text against.</summary>
    private async Task<GenerateResponse> GrpcGreedyAsync(Action<GenerateRequest> fill, uint maxTokens)
    {
        var request = new GenerateRequest { Sampling = new SamplingParams { MaxTokens = maxTokens } };
        fill(request);
        return await new Inference.InferenceClient(cluster.Grpc.Invoker).GenerateAsync(request).ResponseAsync;
    }

    [Fact]
    public async Task Chat_completion_has_openai_shape_usage_and_the_nodes_tokens_as_text()
    {
        var reply = await PostAsync(Http, "/v1/chat/completions", Chat("Hello there", 12));
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        JsonElement body = reply.Body;
        Assert.StartsWith("chatcmpl-", body.GetProperty("id").GetString());
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.Equal(Model, body.GetProperty("model").GetString());
        Assert.True(body.GetProperty("created").GetInt64() > 1_700_000_000);
        JsonElement choice = body.GetProperty("choices")[0];
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        JsonElement usage = body.GetProperty("usage");
        Assert.Equal(12, usage.GetProperty("completion_tokens").GetInt32());
        int prompt = usage.GetProperty("prompt_tokens").GetInt32();
        Assert.Equal(prompt + 12, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal(0, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());

        var grpc = await GrpcGreedyAsync(r =>
        {
            r.Messages.Add(new ChatMessage { Role = "system", Content = "You are terse." });
            r.Messages.Add(new ChatMessage { Role = "user", Content = "Hello there" });
        }, 12);
        Assert.Equal((uint)prompt, grpc.Usage.PromptTokens);
        int[] ids = grpc.TokenIds.Select(i => (int)i).ToArray();
        Assert.Equal(12, ids.Length);
        Assert.Equal(cluster.Gateway.Model.Tokenizer.Decode(ids, skipSpecialTokens: true), Content(body));
    }

    [Fact]
    public async Task Completion_with_token_ids_decodes_the_greedy_tokens()
    {
        var reply = await PostAsync(Http, "/v1/completions", new { model = Model, prompt = new[] { 0, 1000, 2000, 3000 }, max_tokens = 7, temperature = 0 });
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.Equal("text_completion", reply.Body.GetProperty("object").GetString());
        Assert.StartsWith("cmpl-", reply.Body.GetProperty("id").GetString());
        JsonElement choice = reply.Body.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(4, reply.Body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(7, reply.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var grpc = await GrpcGreedyAsync(r => r.PromptTokenIds.Add([0, 1000, 2000, 3000]), 7);
        Assert.Equal(cluster.Gateway.Model.Tokenizer.Decode(grpc.TokenIds.Select(i => (int)i).ToArray(), skipSpecialTokens: true),
            choice.GetProperty("text").GetString());
        Assert.Equal(grpc.Text, choice.GetProperty("text").GetString());
    }

    [Fact]
    public async Task Text_prompt_completion_defaults_to_16_tokens()
    {
        var reply = await PostAsync(Http, "/v1/completions", new { model = Model, prompt = "Once upon a time", temperature = 0 });
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.Equal(16, reply.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        // BOS + the text's ids.
        int[] ids = cluster.Gateway.Model.Tokenizer.Encode("Once upon a time");
        Assert.Equal(ids.Length + 1, reply.Body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task Streamed_chat_has_role_first_then_deltas_finish_usage_and_done_adding_up_to_the_whole_answer()
    {
        var whole = await PostAsync(Http, "/v1/chat/completions", Chat("Count to five", 10));
        var events = await StreamAsync(Http, "/v1/chat/completions", Chat("Count to five", 10, extra: new { stream = true, stream_options = new { include_usage = true } }));

        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        JsonElement first = chunks[0].GetProperty("choices")[0];
        Assert.Equal("assistant", first.GetProperty("delta").GetProperty("role").GetString());
        Assert.Equal(JsonValueKind.Null, first.GetProperty("finish_reason").ValueKind);

        JsonElement usageChunk = chunks[^1];
        Assert.Equal(0, usageChunk.GetProperty("choices").GetArrayLength());
        Assert.Equal(10, usageChunk.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(whole.Body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), usageChunk.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        JsonElement finish = chunks[^2].GetProperty("choices")[0];
        Assert.Equal("length", finish.GetProperty("finish_reason").GetString());
        string content = string.Concat(chunks[..^1].Select(c => c.GetProperty("choices")[0].GetProperty("delta"))
            .Select(d => d.TryGetProperty("content", out var t) ? t.GetString() : ""));
        Assert.Equal(Content(whole.Body), content);
        Assert.All(chunks[..^2], c => Assert.Equal(JsonValueKind.Null, c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        Assert.All(chunks[..^1], c => Assert.False(c.TryGetProperty("usage", out _)));
    }

    [Fact]
    public async Task Streamed_completion_without_usage_ends_with_finish_and_done()
    {
        var events = await StreamAsync(Http, "/v1/completions", new { model = Model, prompt = new[] { 0, 5, 6 }, max_tokens = 6, temperature = 0, stream = true });
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        Assert.Equal("length", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var whole = await PostAsync(Http, "/v1/completions", new { model = Model, prompt = new[] { 0, 5, 6 }, max_tokens = 6, temperature = 0 });
        Assert.Equal(whole.Body.GetProperty("choices")[0].GetProperty("text").GetString(),
            string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
    }

    [Fact]
    public async Task A_stop_string_ends_the_answer_before_it_whole_and_streamed_and_frees_the_node()
    {
        var free = await PostAsync(Http, "/v1/completions", new { model = Model, prompt = new[] { 0, 42, 43 }, max_tokens = 40, temperature = 0 });
        string text = free.Body.GetProperty("choices")[0].GetProperty("text").GetString()!;
        Assert.True(text.Length >= 12, $"the greedy text is too short to cut: '{text}'");
        string stop = text.Substring(text.Length / 2, 3);
        string expected = text[..text.IndexOf(stop, StringComparison.Ordinal)];

        var cut = await PostAsync(Http, "/v1/completions", new { model = Model, prompt = new[] { 0, 42, 43 }, max_tokens = 40, temperature = 0, stop = new[] { "\u0001never", stop } });
        JsonElement choice = cut.Body.GetProperty("choices")[0];
        Assert.Equal(expected, choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.True(cut.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32() < 40);

        var events = await StreamAsync(Http, "/v1/completions", new { model = Model, prompt = new[] { 0, 42, 43 }, max_tokens = 40, temperature = 0, stop, stream = true });
        var texts = events[..^1].Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!).ToList();
        Assert.Equal(expected, string.Concat(texts));
        await cluster.WaitIdleAsync();
    }

    [Fact]
    public async Task The_same_seed_gives_the_same_sampled_text_and_another_seed_another()
    {
        async Task<string> Sample(long seed)
        {
            var r = await PostAsync(Http, "/v1/chat/completions", Chat("Tell me a story", 16, temperature: 1.0, extra: new { seed }));
            Assert.Equal(HttpStatusCode.OK, r.Status);
            return Content(r.Body);
        }
        string a = await Sample(42), b = await Sample(42), c = await Sample(43);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public async Task Concurrent_requests_are_batched_together_and_each_gets_its_own_answer()
    {
        var reference = await PostAsync(Http, "/v1/completions", new { model = Model, prompt = new[] { 0, 77 }, max_tokens = 24, temperature = 0 });
        string expected = reference.Body.GetProperty("choices")[0].GetProperty("text").GetString()!;
        var tasks = Enumerable.Range(0, 6).Select(async i =>
        {
            if (i % 2 == 0)
            {
                var r = await PostAsync(Http, "/v1/completions", new { model = Model, prompt = new[] { 0, 77 }, max_tokens = 24, temperature = 0 });
                return r.Body.GetProperty("choices")[0].GetProperty("text").GetString()!;
            }
            var events = await StreamAsync(Http, "/v1/completions", new { model = Model, prompt = new[] { 0, 77 }, max_tokens = 24, temperature = 0, stream = true });
            return string.Concat(events[..^1].Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()));
        }).ToArray();
        string[] answers = await Task.WhenAll(tasks);
        Assert.All(answers, a => Assert.Equal(expected, a));
        Assert.True(cluster.Node.Counters.PeakBatch >= 2, $"peak batch {cluster.Node.Counters.PeakBatch}: the requests never shared a decode step");
        await cluster.WaitIdleAsync();
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_stream_stops_its_generation_on_the_node()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent(new { model = Model, prompt = new[] { 0, 9 }, max_tokens = 400, temperature = 0, stream = true }),
        };
        using (var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            int seen = 0;
            await foreach (string _ in ReadEventsAsync(reader))
                if (++seen == 3) break;
            var stats = await cluster.NodeStatsAsync();
            Assert.Equal(1u, stats.Running + stats.Queued);
        }
        await cluster.WaitIdleAsync();
        var after = await cluster.NodeStatsAsync();
        Assert.True(after.GeneratedTokens > 0);
        Assert.All(cluster.Gateway.Router.Nodes, n => Assert.Equal(0, n.InFlight));
    }

    [Fact]
    public async Task Chat_logprobs_list_every_token_with_its_top_alternatives()
    {
        var reply = await PostAsync(Http, "/v1/chat/completions", Chat("Hi", 6, extra: new { logprobs = true, top_logprobs = 3 }));
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        JsonElement content = reply.Body.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("content");
        Assert.Equal(6, content.GetArrayLength());
        string joined = "";
        foreach (JsonElement t in content.EnumerateArray())
        {
            float lp = t.GetProperty("logprob").GetSingle();
            Assert.True(lp <= 0);
            string token = t.GetProperty("token").GetString()!;
            joined += token;
            Assert.Equal(System.Text.Encoding.UTF8.GetBytes(token).Select(b => (int)b), t.GetProperty("bytes").EnumerateArray().Select(b => b.GetInt32()));
            var top = t.GetProperty("top_logprobs").EnumerateArray().ToList();
            Assert.Equal(3, top.Count);
            for (int i = 1; i < top.Count; i++) Assert.True(top[i - 1].GetProperty("logprob").GetSingle() >= top[i].GetProperty("logprob").GetSingle());
            // Greedy: the chosen token is the most likely one.
            Assert.Equal(token, top[0].GetProperty("token").GetString());
            Assert.Equal(lp, top[0].GetProperty("logprob").GetSingle(), 5);
        }
        Assert.Equal(Content(reply.Body), joined);
    }

    [Fact]
    public async Task Completion_logprobs_use_the_legacy_arrays()
    {
        var reply = await PostAsync(Http, "/v1/completions", new { model = Model, prompt = new[] { 0, 11 }, max_tokens = 5, temperature = 0, logprobs = 2 });
        JsonElement lp = reply.Body.GetProperty("choices")[0].GetProperty("logprobs");
        var tokens = lp.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToList();
        Assert.Equal(5, tokens.Count);
        Assert.Equal(5, lp.GetProperty("token_logprobs").GetArrayLength());
        Assert.All(lp.GetProperty("top_logprobs").EnumerateArray(), d => Assert.InRange(d.EnumerateObject().Count(), 1, 2));
        var offsets = lp.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToList();
        for (int i = 0; i < tokens.Count; i++) Assert.Equal(tokens.Take(i).Sum(t => t.Length), offsets[i]);
    }

    [Fact]
    public async Task Models_healthz_and_readyz_answer()
    {
        var models = JsonDocument.Parse(await Http.GetStringAsync("/v1/models")).RootElement;
        Assert.Equal("list", models.GetProperty("object").GetString());
        Assert.Equal(Model, models.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.Equal("model", models.GetProperty("data")[0].GetProperty("object").GetString());
        Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync("/healthz")).StatusCode);
        var ready = await Http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var report = JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("SERVING", report.GetProperty("nodes")[0].GetProperty("status").GetString());
    }

    [Fact]
    public async Task Neutral_values_of_unsupported_fields_and_unknown_fields_are_accepted()
    {
        var reply = await PostRawAsync(Http, "/v1/chat/completions", "{\"model\":\"tiny-test\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}],"
            + "\"max_tokens\":2,\"n\":1,\"presence_penalty\":0,\"frequency_penalty\":0,\"response_format\":{\"type\":\"text\"},\"top_logprobs\":0,"
            + "\"user\":\"u-1\",\"stop\":null,\"stream\":false,\"tools\":[],\"metadata\":{\"a\":\"b\"}}");
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
        Assert.Equal(2, reply.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    private static StringContent JsonContent(object body) => new(JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json");
}
