using Cluster.Gateway.Grpc;
using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;

namespace Cluster.Gateway.Tests;

[Collection("cluster")]
public class GrpcApiTests(ClusterFixture cluster)
{
    private GrpcChannel Channel => cluster.Grpc;

    private static GenerateRequest Ids(uint maxTokens, params uint[] ids)
    {
        var r = new GenerateRequest { Sampling = new SamplingParams { MaxTokens = maxTokens } };
        r.PromptTokenIds.Add(ids);
        return r;
    }

    [Fact]
    public async Task ListModels_names_the_served_model()
    {
        var models = await Channel.UnaryAsync(InferenceMethods.ListModels, new ListModelsRequest());
        Assert.Equal("tiny-test", Assert.Single(models.Models).Id);
    }

    [Fact]
    public async Task Generate_returns_the_greedy_tokens_their_text_and_usage()
    {
        var response = await Channel.UnaryAsync(InferenceMethods.Generate, Ids(9, 0, 500, 600));
        Assert.Equal(9, response.TokenIds.Count);
        Assert.Equal("length", response.FinishReason);
        Assert.Equal(3u, response.Usage.PromptTokens);
        Assert.Equal(9u, response.Usage.CompletionTokens);
        Assert.Equal(cluster.Gateway.Model.Tokenizer.Decode(response.TokenIds.Select(i => (int)i).ToArray(), skipSpecialTokens: true), response.Text);
        // Greedy is deterministic.
        var again = await Channel.UnaryAsync(InferenceMethods.Generate, Ids(9, 0, 500, 600));
        Assert.Equal(response.TokenIds, again.TokenIds);
    }

    [Fact]
    public async Task GenerateStream_chunks_add_up_to_Generate_and_end_with_finish_and_usage()
    {
        var request = new GenerateRequest { Sampling = new SamplingParams { MaxTokens = 10, Stop = { "\u0007" } } };
        request.Messages.Add(new ChatMessage { Role = "user", Content = "What is 2+2?" });
        var whole = await Channel.UnaryAsync(InferenceMethods.Generate, request);

        using var call = Channel.ServerStreaming(InferenceMethods.GenerateStream, request);
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
        var a = await Channel.UnaryAsync(InferenceMethods.Generate, request);
        var b = await Channel.UnaryAsync(InferenceMethods.Generate, request);
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
            case "stop": r.Sampling.Stop.Add(["a", "b", "c", "d", "e"]); break;
            case "vocab": r.PromptTokenIds.Add(200_000); break;
            case "role": r.PromptTokenIds.Clear(); r.Messages.Add(new ChatMessage { Role = "robot", Content = "x" }); break;
            case "context": r.Sampling.MaxTokens = 511; break;
        }
        var e = await Assert.ThrowsAsync<RpcException>(() => Channel.UnaryAsync(InferenceMethods.Generate, r));
        Assert.Equal(code, e.StatusCode);
        Assert.Contains(mentioned, e.Status.Detail);

        using var call = Channel.ServerStreaming(InferenceMethods.GenerateStream, r);
        var s = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(code, s.StatusCode);
    }

    [Fact]
    public async Task A_full_queue_is_RESOURCE_EXHAUSTED_and_no_node_UNAVAILABLE()
    {
        await using (ScriptedNode node = await ScriptedNode.StartAsync(cluster.Gateway.Model))
        await using (GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([node.Endpoint]) with { MaxQueue = 1, MaxQueuedRequests = 0 }))
        {
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{gateway.GrpcPort}");
            using var hold = channel.ServerStreaming(InferenceMethods.GenerateStream, Ids(4, 0, ScriptedNode.Hang));
            Assert.True(await hold.ResponseStream.MoveNext());
            var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(InferenceMethods.Generate, Ids(2, 0, 8)));
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        }

        await using (GatewayHost gateway = await ClusterFixture.StartGatewayAsync([$"127.0.0.1:{ApiClient.DeadPort()}"]))
        {
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{gateway.GrpcPort}", new GrpcChannelOptions { Resilience = null });
            var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(InferenceMethods.Generate, Ids(2, 0, 8)));
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        }
    }

    [Fact]
    public async Task Cancelling_a_stream_stops_the_generation_on_the_node()
    {
        using (var cts = new CancellationTokenSource())
        {
            using var call = Channel.ServerStreaming(InferenceMethods.GenerateStream, Ids(400, 0, 12), new CallOptions { CancellationToken = cts.Token });
            for (int i = 0; i < 3; i++) Assert.True(await call.ResponseStream.MoveNext());
            var stats = await cluster.NodeStatsAsync();
            Assert.Equal(1u, stats.Running + stats.Queued);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<Exception>(async () => { while (await call.ResponseStream.MoveNext()) { } });
        }
        await cluster.WaitIdleAsync();
    }
}
