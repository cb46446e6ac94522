using Cluster.Protos.V1;

namespace Cluster.AttentionNode.Tests;

/// <summary>A prompt that starts like an earlier one reuses its cached blocks: those tokens are reported and not computed.</summary>
public sealed class PrefixCacheTests
{
    [Fact]
    public async Task ASecondRequestWithTheSamePrefixComputesOnlyTheRestAndMatchesAColdNode()
    {
        await using var warm = await TestNode.StartAsync("warm", NodeRole.Both);
        await using var cold = await TestNode.StartAsync("cold", NodeRole.Both, o => o with { PrefixCache = false });
        uint[] prefix = TinyModel.Prompt(80, 1000);
        uint[] first = [.. prefix, .. TinyModel.Prompt(81, 25)[1..]], second = [.. prefix, .. TinyModel.Prompt(82, 25)[1..]];
        const int maxTokens = 10, wholeBlocks = 1000 / 64 * 64;

        var r1 = await warm.GenerateAsync(TestNode.Greedy(first, maxTokens));
        Assert.Equal(0u, r1[0].CachedPromptTokens);
        long computed = warm.Host.Counters.ComputedPromptTokens;
        Assert.Equal(first.Length, computed);

        var r2 = await warm.GenerateAsync(TestNode.Greedy(second, maxTokens));
        Assert.Equal((uint)second.Length, r2[0].PromptTokens);
        Assert.Equal((uint)wholeBlocks, r2[0].CachedPromptTokens);
        Assert.Equal(second.Length - wholeBlocks, warm.Host.Counters.ComputedPromptTokens - computed);
        Assert.Equal((long)first.Length + second.Length, warm.Host.Counters.PromptTokens);

        var reference = await cold.GenerateAsync(TestNode.Greedy(second, maxTokens));
        Assert.Equal(0u, reference[0].CachedPromptTokens);
        Assert.Equal(reference.Select(e => e.TokenId), r2.Select(e => e.TokenId));
        Assert.Equal(second.Length, cold.Host.Counters.ComputedPromptTokens);

        AttentionStats stats = await warm.StatsAsync();
        Assert.Equal((ulong)wholeBlocks, stats.PrefixHitTokens);
        Assert.Equal((ulong)(first.Length + second.Length), stats.PrefixLookupTokens);
        Assert.True(stats.BlocksCached >= wholeBlocks / 64, $"{stats.BlocksCached} cached blocks");
        Assert.Equal(0u, stats.BlocksUsed);
        AttentionStats coldStats = await cold.StatsAsync();
        Assert.Equal(0UL, coldStats.PrefixLookupTokens + coldStats.PrefixHitTokens);
        Assert.Equal(0u, coldStats.BlocksCached);
    }
}
