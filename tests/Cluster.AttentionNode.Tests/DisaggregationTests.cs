using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// Prefill/decode disaggregation: a decode node continues what a prefill node computed and streamed, giving the
/// tokens a colocated node (role both) and the single-process reference give, with and without prefix hits.
/// </summary>
public sealed class DisaggregationTests
{
    private const int BlockSize = 16, Chunk = 32;

    private static AttentionOptions Small(AttentionOptions o) => o with { KvBlockSize = BlockSize, PrefillChunk = Chunk };

    /// <summary>A shared prefix of 70 tokens and a different tail of 10 per prompt: later prompts hit 64 cached tokens.</summary>
    private static uint[][] PromptsWithSharedPrefix(int count)
    {
        uint[] prefix = TinyModel.Prompt(50, 70);
        var prompts = new uint[count][];
        for (int i = 0; i < count; i++) prompts[i] = [.. prefix, .. TinyModel.Prompt(51 + i, 11)[1..]];
        return prompts;
    }

    [Fact]
    public async Task SplitAndColocatedNodesGiveTheReferenceGreedyTokensWithAndWithoutPrefixHits()
    {
        var (model, checkpoint) = TinyModel.Load();
        using var _ = checkpoint;
        await using var prefill = await TestNode.StartAsync("prefill-0", NodeRole.Prefill, Small);
        await using var decode = await TestNode.StartAsync("decode-0", NodeRole.Decode, Small);
        await using var both = await TestNode.StartAsync("both-0", NodeRole.Both, Small);
        const int maxTokens = 12;
        uint[][] prompts = PromptsWithSharedPrefix(3);
        for (int r = 0; r < prompts.Length; r++)
        {
            int[] expected = TinyModel.Greedy(model, prompts[r], maxTokens).Tokens;
            var split = await decode.GenerateAsync(TestNode.Greedy(prompts[r], maxTokens, prefill.Endpoint));
            var colocated = await both.GenerateAsync(TestNode.Greedy(prompts[r], maxTokens));
            SchedulerTests.AssertMatchesGreedy(expected, split, maxTokens, model.Config.EosTokenIds);
            SchedulerTests.AssertMatchesGreedy(expected, colocated, maxTokens, model.Config.EosTokenIds);
            uint cached = r == 0 ? 0u : 64u;
            Assert.Equal((uint)prompts[r].Length, split[0].PromptTokens);
            Assert.Equal(cached, split[0].CachedPromptTokens);
            Assert.Equal(cached, colocated[0].CachedPromptTokens);
        }

        AttentionStats p = await prefill.StatsAsync(), d = await decode.StatsAsync(), b = await both.StatsAsync();
        Assert.Equal((NodeRole.Prefill, NodeRole.Decode, NodeRole.Both), (p.Role, d.Role, b.Role));
        Assert.Equal(128UL, p.PrefixHitTokens);
        Assert.Equal(128UL, b.PrefixHitTokens);
        Assert.Equal(0UL, d.PrefixHitTokens);
        Assert.True(p.PrefixLookupTokens >= 3 * 80, $"lookups {p.PrefixLookupTokens}");
        Assert.True(p.KvBytesSent > 0);
        Assert.Equal(p.KvBytesSent, d.KvBytesReceived);
        Assert.Equal(0UL, b.KvBytesSent + b.KvBytesReceived);
        foreach (AttentionStats s in new[] { p, d, b })
        {
            Assert.Equal((uint)BlockSize, s.BlockSize);
            Assert.Equal((uint)Chunk, s.PrefillChunk);
            Assert.True(s.BlocksTotal > 0);
            Assert.Equal(0u, s.BlocksUsed);
            Assert.Equal(s.BlocksTotal, s.BlocksAvailable);
            Assert.True(s.KvCacheBytes > 0 && s.KvCacheBytes <= 1UL << 30);
            Assert.Equal(0u, s.Running + s.Queued);
            Assert.Equal(0UL, s.QueuedPromptTokens);
        }
        // The prompts' full blocks stay cached where they were prefilled; the decode node published nothing.
        Assert.True(p.BlocksCached > 0 && b.BlocksCached > 0);
        Assert.Equal(0u, d.BlocksCached);
        Assert.Equal((ulong)prompts.Sum(x => x.Length), p.PromptTokens);
        Assert.Equal(0UL, d.PromptTokens);
    }

    [Fact]
    public async Task SeededSamplingContinuesOnTheDecodeNodeAsOnOneNode()
    {
        await using var prefill = await TestNode.StartAsync("prefill-0", NodeRole.Prefill, Small);
        await using var decode = await TestNode.StartAsync("decode-0", NodeRole.Decode, Small);
        await using var both = await TestNode.StartAsync("both-0", NodeRole.Both, Small);
        TokenGenerateRequest Request(string prefillNode) => new()
        {
            PromptTokenIds = { TinyModel.Prompt(55, 40) }, Sampling = new() { MaxTokens = 16, Temperature = 1.2f, TopK = 200, Seed = 99 }, TopLogprobs = 2, PrefillNode = prefillNode,
        };
        var split = await decode.GenerateAsync(Request(prefill.Endpoint));
        var colocated = await both.GenerateAsync(Request(""));
        Assert.Equal(colocated.Select(e => e.TokenId), split.Select(e => e.TokenId));
        Assert.Equal(colocated.Select(e => e.Logprob), split.Select(e => e.Logprob));
    }

    [Fact]
    public async Task EachRoleRefusesWhatItDoesNotServe()
    {
        await using var prefill = await TestNode.StartAsync("prefill-0", NodeRole.Prefill);
        await using var decode = await TestNode.StartAsync("decode-0", NodeRole.Decode);
        uint[] prompt = TinyModel.Prompt(56, 5);

        var e = await Assert.ThrowsAsync<RpcException>(() => prefill.GenerateAsync(TestNode.Greedy(prompt, 4)));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Equal("attention node prefill-0 has role prefill: it serves Prefill, not Generate", e.Status.Detail);

        e = await Assert.ThrowsAsync<RpcException>(() => decode.GenerateAsync(TestNode.Greedy(prompt, 4)));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Equal("attention node decode-0 has role decode: Generate needs prefill_node", e.Status.Detail);

        e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = new Protos.V1.AttentionService.AttentionServiceClient(decode.Channel.Invoker).Prefill(new PrefillRequest { Request = TestNode.Greedy(prompt, 4) });
            while (await call.ResponseStream.MoveNext()) { }
        });
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Equal("attention node decode-0 has role decode: it does not serve Prefill", e.Status.Detail);

        // A decode node named as the prefill node: the transfer fails, saying why.
        await using var other = await TestNode.StartAsync("decode-1", NodeRole.Decode);
        e = await Assert.ThrowsAsync<RpcException>(() => decode.GenerateAsync(TestNode.Greedy(prompt, 4, other.Endpoint)));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.StartsWith($"kv transfer from prefill node {other.Endpoint} failed: FailedPrecondition: attention node decode-1 has role decode", e.Status.Detail);

        e = await Assert.ThrowsAsync<RpcException>(() => decode.GenerateAsync(TestNode.Greedy(prompt, 4, "no port here")));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith("prefill_node", e.Status.Detail);
        Assert.Equal(0u, (await decode.StatsAsync()).BlocksUsed);
    }

    [Theory]
    [InlineData("chunk", "--prefill-chunk")]
    [InlineData("block", "--kv-block-size")]
    [InlineData("bytes", "--kv-cache-bytes")]
    [InlineData("role", "--role")]
    [InlineData("batch", "--max-batch")]
    public async Task OptionsOutOfRangeAreRefusedNamingTheFlag(string what, string flag)
    {
        var options = new AttentionOptions { ModelDir = TinyModel.Directory };
        options = what switch
        {
            "chunk" => options with { PrefillChunk = 0 },
            "block" => options with { KvBlockSize = 0 },
            "bytes" => options with { KvCacheBytes = 0 },
            "role" => options with { Role = (NodeRole)7 },
            _ => options with { MaxBatch = 0 },
        };
        var e = await Assert.ThrowsAsync<ArgumentException>(() => AttentionHost.StartAsync(options));
        Assert.StartsWith(flag, e.Message);
    }

    [Fact]
    public async Task ACacheTooSmallForOneBlockIsRefused()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => AttentionHost.StartAsync(new AttentionOptions { ModelDir = TinyModel.Directory, KvCacheBytes = 100 }));
        Assert.StartsWith("--kv-cache-bytes: latent cache budget of 100 bytes holds no block", e.Message);
    }
}
