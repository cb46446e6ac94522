using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Health.V1;
using Grpc.Core;

namespace Cluster.AttentionNode.Tests;

/// <summary>The node over gRPC on loopback, with its routed experts in process.</summary>
public sealed class AttentionHostTests : IAsyncLifetime
{
    private static CallOptions Call() => new(deadline: DateTime.UtcNow.AddSeconds(60));
    private AttentionHost _host = null!;
    private PeerChannel _channel = null!;

    public async Task InitializeAsync()
    {
        _host = await AttentionHost.StartAsync(new AttentionOptions { ModelDir = TinyModel.Directory, NodeId = "attention-test", MaxBatch = 4 });
        _channel = PeerChannel.ForAddress($"http://127.0.0.1:{_host.Port}");
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _host.DisposeAsync();
    }

    private async Task<List<TokenEvent>> Generate(TokenGenerateRequest request)
    {
        using var call = new Protos.V1.AttentionService.AttentionServiceClient(_channel.Invoker).Generate(request, options: Call());
        var events = new List<TokenEvent>();
        while (await call.ResponseStream.MoveNext()) events.Add(call.ResponseStream.Current);
        return events;
    }

    private static TokenGenerateRequest Greedy(uint[] prompt, uint maxTokens) => new() { PromptTokenIds = { prompt }, Sampling = new() { MaxTokens = maxTokens } };

    [Fact]
    public async Task HealthIsServingOnceLoaded()
    {
        var health = new Health.HealthClient(_channel.Invoker);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest(), Call())).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = Protos.V1.AttentionService.Descriptor.FullName }, Call())).Status);
    }

    [Fact]
    public async Task GreedyTokensEqualSingleProcessAndStatsCountThem()
    {
        var (model, checkpoint) = TinyModel.Load();
        using var _ = checkpoint;
        uint[][] prompts = [TinyModel.Prompt(10, 9), TinyModel.Prompt(11, 17), TinyModel.Prompt(12, 2)];
        const int maxTokens = 20;
        var results = await Task.WhenAll(prompts.Select(p => Generate(Greedy(p, maxTokens))));
        long fed = 0;
        for (int r = 0; r < prompts.Length; r++)
        {
            SchedulerTests.AssertMatchesGreedy(TinyModel.Greedy(model, prompts[r], maxTokens).Tokens, results[r], maxTokens, model.Config.EosTokenIds);
            Assert.Equal((uint)prompts[r].Length, results[r][0].PromptTokens);
            // Every prompt token and every sampled token but the last went through the model once.
            fed += prompts[r].Length + results[r].Count - 1;
        }

        var stats = await new Protos.V1.AttentionService.AttentionServiceClient(_channel.Invoker).GetStatsAsync(new GetStatsRequest(), options: Call()).ResponseAsync;
        var config = TinyModel.Config;
        int moeLayers = Enumerable.Range(0, config.NumHiddenLayers).Count(config.IsMoeLayer);
        Assert.Equal("attention-test", stats.NodeId);
        Assert.Equal((ulong)prompts.Sum(p => p.Length), stats.PromptTokens);
        Assert.Equal((ulong)results.Sum(r => r.Count), stats.GeneratedTokens);
        Assert.Equal((uint)config.NRoutedExperts, stats.ExpertsPerLayer);
        Assert.Equal(moeLayers * config.NRoutedExperts, stats.ExpertTokens.Count);
        Assert.Equal((ulong)(fed * moeLayers * config.NumExpertsPerTok), stats.ExpertTokens.Aggregate(0UL, (a, b) => a + b));
        Assert.Equal(0u, stats.Running);
        Assert.Equal(0UL, stats.CacheBytesUsed);
    }

    [Fact]
    public async Task SeededSamplingRepeatsAndTopLogprobsAreSorted()
    {
        var request = new TokenGenerateRequest
        {
            PromptTokenIds = { TinyModel.Prompt(20, 6) }, Sampling = new() { MaxTokens = 12, Temperature = 0.9f, TopP = 0.95f, TopK = 50, Seed = 1234 }, TopLogprobs = 3,
        };
        var a = await Generate(request);
        var b = await Generate(request);
        Assert.Equal(a.Select(e => e.TokenId), b.Select(e => e.TokenId));
        foreach (var e in a)
        {
            Assert.Equal(3, e.TopLogprobs.Count);
            Assert.True(e.TopLogprobs[0].Logprob >= e.TopLogprobs[1].Logprob && e.TopLogprobs[1].Logprob >= e.TopLogprobs[2].Logprob);
            Assert.True(e.Logprob <= 0 && e.Logprob <= e.TopLogprobs[0].Logprob + 1e-6f);
        }
    }

    [Fact]
    public async Task StopTokenEndsWithStop()
    {
        uint[] prompt = TinyModel.Prompt(30, 5);
        var free = await Generate(Greedy(prompt, 10));
        uint stop = free[4].TokenId;
        var request = Greedy(prompt, 10);
        request.StopTokenIds.Add(stop);
        var stopped = await Generate(request);
        int at = free.FindIndex(e => e.TokenId == stop);
        Assert.Equal(at + 1, stopped.Count);
        Assert.Equal("stop", stopped[^1].FinishReason);
        Assert.Equal(stop, stopped[^1].TokenId);
    }

    [Theory]
    [InlineData("empty", "prompt_token_ids")]
    [InlineData("id", "prompt_token_ids[1]")]
    [InlineData("context", "sampling.max_tokens")]
    [InlineData("zero", "sampling.max_tokens")]
    [InlineData("temperature", "sampling.temperature")]
    [InlineData("hot", "sampling.temperature")]
    [InlineData("top_p", "sampling.top_p")]
    [InlineData("no_p", "sampling.top_p")]
    [InlineData("top_k", "sampling.top_k")]
    [InlineData("strings", "sampling.stop")]
    [InlineData("top_logprobs", "top_logprobs")]
    [InlineData("stop", "stop_token_ids[0]")]
    public async Task InvalidRequestsNameTheField(string what, string field)
    {
        var config = TinyModel.Config;
        var request = Greedy([0, 5, 6], 4);
        switch (what)
        {
            case "empty": request.PromptTokenIds.Clear(); break;
            case "id": request.PromptTokenIds[1] = (uint)config.VocabSize; break;
            case "context": request.Sampling.MaxTokens = (uint)config.MaxPositionEmbeddings; break;
            case "zero": request.Sampling.MaxTokens = 0; break;
            case "temperature": request.Sampling.Temperature = -1; break;
            // The gateway's range (OpenAI's) holds here too.
            case "hot": request.Sampling.Temperature = 2.5f; break;
            case "top_p": request.Sampling.TopP = 1.5f; break;
            case "no_p": request.Sampling.TopP = 0; break;
            case "top_k": request.Sampling.TopK = (uint)config.VocabSize + 1; break;
            case "strings": request.Sampling.Stop.Add("x"); break;
            case "top_logprobs": request.TopLogprobs = 21; break;
            case "stop": request.StopTokenIds.Add(uint.MaxValue); break;
        }
        var e = await Assert.ThrowsAsync<RpcException>(() => Generate(request));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith(field, e.Status.Detail);
    }

    [Fact]
    public async Task ClientCancellationFreesTheCache()
    {
        using var cancel = new CancellationTokenSource();
        using (var call = new Protos.V1.AttentionService.AttentionServiceClient(_channel.Invoker).Generate(Greedy(TinyModel.Prompt(40, 8), 100_000), options: Call().WithCancellationToken(cancel.Token)))
        {
            for (int i = 0; i < 3; i++) Assert.True(await call.ResponseStream.MoveNext());
            Assert.True(_host.Caches.Stats().UsedBlocks > 0);
            cancel.Cancel();
        }
        await SchedulerTests.WaitUntil(() => _host.Caches.Stats().UsedBlocks == 0 && _host.Counters.Running == 0);
        // Still serving.
        Assert.Equal(3, (await Generate(Greedy(TinyModel.Prompt(41, 4), 3))).Count);
    }
}
