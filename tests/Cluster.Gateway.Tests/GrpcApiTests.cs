using Cluster.Gateway.Grpc;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.Gateway.Tests;

[Collection("cluster")]
public class GrpcApiTests(ClusterFixture cluster)
{
    private PeerChannel Channel => cluster.Grpc;

    private static GenerateRequest Ids(uint maxTokens, params uint[] ids)
    {
        var r = new GenerateRequest { Sampling = new SamplingParams { MaxTokens = maxTokens } };
        r.PromptTokenIds.Add(ids);
        return r;
    }

    [Fact]
    public async Task ListModels_names_the_served_model()
    {
        var models = await new Inference.InferenceClient(Channel.Invoker).ListModelsAsync(new ListModelsRequest()).ResponseAsync;
        Assert.Equal("tiny-test", Assert.Single(models.Models).Id);
    }

    [Fact]
    public async Task Generate_returns_the_greedy_tokens_their_text_and_usage()
    {
        var response = await new Inference.InferenceClient(Channel.Invoker).GenerateAsync(Ids(9, 0, 500, 600)).ResponseAsync;
        Assert.Equal(9, response.TokenIds.Count);
        Assert.Equal("length", response.FinishReason);
        Assert.Equal(3u, response.Usage.PromptTokens);
        Assert.Equal(9u, response.Usage.CompletionTokens);
        Assert.Equal(cluster.Gateway.Model.Tokenizer.Decode(response.TokenIds.Select(i => (int)i).ToArray(), skipSpecialTokens: true), response.Text);
        // Greedy is deterministic.
        var again = await new Inference.InferenceClient(Channel.Invoker).GenerateAsync(Ids(9, 0, 500, 600)).ResponseAsync;
        Assert.Equal(response.TokenIds, again.TokenIds);
    }

    [Fact]
    public async Task GenerateStream_chunks_add_up_to_Generate_and_end_with_finish_and_usage()
    {
        var request = new GenerateRequest { Sampling = new SamplingParams { MaxTokens = 10, Stop = { "\u0007" } } };
        request.Messages.Add(new ChatMessage { Role = "user", Content = "What is 2+2?" });
        var whole = await new Inference.InferenceClient(Channel.Invoker).GenerateAsync(request).ResponseAsync;

        using var call = new Inference.InferenceClient(Channel.Invoker).GenerateStream(request);
        var chunks = new List<GenerateChunk>();
        await foreach (var chunk in call.ResponseStream.ReadAllAsync()) chunks.Add(chunk);
        GenerateChunk last = chunks[^1];
        Assert.Equal(whole.FinishReason, last.FinishReason);
        Assert.Equal(whole.Usage, last.Usage);
        Assert.All(chunks[..^1], c => Assert.Equal("", c.FinishReason));
        Assert.Equal(whole.Text, string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal(whole.ReasoningText, string.Concat(chunks.Select(c => c.ReasoningText)));
        Assert.Equal(whole.TokenIds, chunks.SelectMany(c => c.TokenIds));
    }

    [Fact]
    public async Task Text_prompts_get_bos_and_seeded_sampling_repeats()
    {
        var request = new GenerateRequest { Prompt = "Hello", Sampling = new SamplingParams { MaxTokens = 8, Temperature = 0.9f, TopP = 0.95f, TopK = 50, Seed = 5 } };
        var a = await new Inference.InferenceClient(Channel.Invoker).GenerateAsync(request).ResponseAsync;
        var b = await new Inference.InferenceClient(Channel.Invoker).GenerateAsync(request).ResponseAsync;
        Assert.Equal(a.TokenIds, b.TokenIds);
        Assert.Equal((uint)cluster.Gateway.Model.Tokenizer.Encode("Hello").Length + 1, a.Usage.PromptTokens);
    }

    public static TheoryData<string, StatusCode, string> Invalid() => new()
    {
        { "none", StatusCode.InvalidArgument, "prompt" },
        { "two", StatusCode.InvalidArgument, "prompt_token_ids" },
        { "model", StatusCode.NotFound, "nope" },
        { "temperature", StatusCode.InvalidArgument, "sampling.temperature" },
        { "top_p", StatusCode.InvalidArgument, "sampling.top_p" },
        { "zero_p", StatusCode.InvalidArgument, "sampling.top_p" },
        { "top_k", StatusCode.InvalidArgument, "sampling.top_k" },
        { "zero_tokens", StatusCode.InvalidArgument, "sampling.max_tokens" },
        { "stop", StatusCode.InvalidArgument, "sampling.stop" },
        { "vocab", StatusCode.InvalidArgument, "prompt_token_ids" },
        { "role", StatusCode.InvalidArgument, "role" },
        { "context", StatusCode.InvalidArgument, "maximum context length" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public async Task Invalid_requests_fail_with_a_status_naming_the_field(string what, StatusCode code, string mentioned)
    {
        var r = Ids(4, 0, 1);
        switch (what)
        {
            case "none": r.PromptTokenIds.Clear(); break;
            case "two": r.Prompt = "hi"; break;
            case "model": r.Model = "nope"; break;
            case "temperature": r.Sampling.Temperature = 2.5f; break;
            case "top_p": r.Sampling.TopP = 1.5f; break;
            case "zero_p": r.Sampling.TopP = 0; break;
            case "top_k": r.Sampling.TopK = 129_281; break;
            case "zero_tokens": r.Sampling.MaxTokens = 0; break;
            case "stop": r.Sampling.Stop.Add(["a", "b", "c", "d", "e"]); break;
            case "vocab": r.PromptTokenIds.Add(200_000); break;
            case "role": r.PromptTokenIds.Clear(); r.Messages.Add(new ChatMessage { Role = "robot", Content = "x" }); break;
            case "context": r.Sampling.MaxTokens = 511; break;
        }
        var e = await Assert.ThrowsAsync<RpcException>(() => new Inference.InferenceClient(Channel.Invoker).GenerateAsync(r).ResponseAsync);
        Assert.Equal(code, e.StatusCode);
        Assert.Contains(mentioned, e.Status.Detail);

        using var call = new Inference.InferenceClient(Channel.Invoker).GenerateStream(r);
        var s = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(code, s.StatusCode);
    }

    [Fact]
    public async Task A_full_queue_is_RESOURCE_EXHAUSTED_and_no_node_UNAVAILABLE()
    {
        await using (ScriptedNode node = await ScriptedNode.StartAsync(cluster.Gateway.Model))
        await using (GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([node.Endpoint]) with { MaxQueue = 1, MaxQueuedRequests = 0 }))
        {
            using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{gateway.GrpcPort}");
            using var hold = new Inference.InferenceClient(channel.Invoker).GenerateStream(Ids(4, 0, ScriptedNode.Hang));
            Assert.True(await hold.ResponseStream.MoveNext());
            var e = await Assert.ThrowsAsync<RpcException>(() => new Inference.InferenceClient(channel.Invoker).GenerateAsync(Ids(2, 0, 8)).ResponseAsync);
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        }

        await using (GatewayHost gateway = await ClusterFixture.StartGatewayAsync([$"127.0.0.1:{ApiClient.DeadPort()}"]))
        {
            using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{gateway.GrpcPort}", new GrpcClientOptions { Resilience = null });
            var e = await Assert.ThrowsAsync<RpcException>(() => new Inference.InferenceClient(channel.Invoker).GenerateAsync(Ids(2, 0, 8)).ResponseAsync);
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        }
    }

    [Fact]
    public async Task Cancelling_a_stream_stops_the_generation_on_the_node()
    {
        using (var cts = new CancellationTokenSource())
        {
            using var call = new Inference.InferenceClient(Channel.Invoker).GenerateStream(Ids(400, 0, 12), cancellationToken: cts.Token);
            for (int i = 0; i < 3; i++) Assert.True(await call.ResponseStream.MoveNext());
            var stats = await cluster.NodeStatsAsync();
            Assert.Equal(1u, stats.Running + stats.Queued);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<Exception>(async () => { while (await call.ResponseStream.MoveNext()) { } });
        }
        await cluster.WaitIdleAsync();
    }
}
