using Cluster.Engine.Cache;

namespace Cluster.Engine.Tests.Cache;

public class LatentCacheManagerTests
{
    private const int BlockSize = 4;
    private static readonly int Layers = CacheFixture.Config.NumHiddenLayers;

    private static int[] Prompt(int length, int salt) => Enumerable.Range(0, length).Select(i => (i * 31 + salt * 7 + 1) % 1000).ToArray();

    /// <summary>Starts, fills and publishes a prompt, then ends its sequence: its full blocks stay cached.</summary>
    private static void Publish(LatentCacheManager manager, int[] prompt)
    {
        PagedLatentCache cache = manager.TryStart(prompt, prompt.Length, reusePrefix: false)!;
        CacheFixture.Fill(cache, prompt, Layers);
        manager.Publish(cache, prompt);
        manager.Release(cache);
    }

    private static int Reused(LatentCacheManager manager, int[] prompt, int extra = 0)
    {
        PagedLatentCache cache = manager.TryStart(prompt, prompt.Length + extra, reusePrefix: true)!;
        int reused = cache.CachedPrefix;
        CacheFixture.AssertHolds(cache, prompt, reused, Layers);
        manager.Release(cache);
        return reused;
    }

    [Fact]
    public void BlocksComeFromTheBudget()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 5);
        Assert.Equal(5, manager.TotalBlocks);
        Assert.Equal(Layers * BlockSize * manager.RowSize * 2L, manager.BlockBytes);
        Assert.Equal(new LatentCacheStats(5, 0, 0, 5, 0, 0), manager.Stats());
        Assert.Equal(0, manager.BlocksFor(0));
        Assert.Equal(1, manager.BlocksFor(4));
        Assert.Equal(2, manager.BlocksFor(5));
        var e = Assert.Throws<ArgumentException>(() => new LatentCacheManager(CacheFixture.Config, new LatentCacheOptions { BlockSize = 4, BudgetBytes = manager.BlockBytes - 1 }));
        Assert.Contains($"budget of {manager.BlockBytes - 1} bytes", e.Message);
        Assert.Throws<ArgumentException>(() => new LatentCacheManager(CacheFixture.Config, new LatentCacheOptions { BlockSize = 0 }));
    }

    [Fact]
    public void ReservationsCountAgainstAvailableBeforeTheyAreAllocated()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 6);
        PagedLatentCache cache = manager.TryStart(Prompt(3, 1), 10, reusePrefix: false)!;
        Assert.Equal(new LatentCacheStats(6, 0, 0, 3, 0, 0), manager.Stats());
        cache.Reserve(5);
        Assert.Equal(new LatentCacheStats(6, 2, 0, 3, 0, 0), manager.Stats());
        cache.Reserve(10);
        Assert.Equal(new LatentCacheStats(6, 3, 0, 3, 0, 0), manager.Stats());
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => cache.Reserve(11));
        Assert.Contains("10 positions reserved", e.Message);
        manager.Release(cache);
        Assert.Equal(new LatentCacheStats(6, 0, 0, 6, 0, 0), manager.Stats());
    }

    [Fact]
    public void AFullCacheRefusesUntilASequenceEnds()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 4);
        PagedLatentCache first = manager.TryStart(Prompt(5, 1), 12, reusePrefix: false)!;
        Assert.Null(manager.TryStart(Prompt(5, 2), 8, reusePrefix: false));
        PagedLatentCache small = manager.TryStart(Prompt(2, 3), 4, reusePrefix: false)!;
        Assert.Equal(0, manager.Stats().AvailableBlocks);
        Assert.Null(manager.TryStart([1], 1, reusePrefix: false));
        manager.Release(first);
        PagedLatentCache second = manager.TryStart(Prompt(5, 2), 8, reusePrefix: false)!;
        second.Reserve(8);
        small.Reserve(4);
        Assert.Equal(new LatentCacheStats(4, 3, 0, 1, 0, 0), manager.Stats());
    }

    [Fact]
    public void BadLengthsAreRejected()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => manager.TryStart(Prompt(5, 1), 4, reusePrefix: false));
        Assert.Throws<ArgumentOutOfRangeException>(() => manager.TryStart([], 0, reusePrefix: false));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => manager.TryStart(Prompt(5, 1), 17, reusePrefix: false));
        Assert.Contains("needs 5 latent cache blocks; the cache has 4", e.Message);
    }

    [Fact]
    public void APromptSharingTwoAndAHalfBlocksReusesTwo()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 16);
        int[] first = Prompt(10, 1);
        Publish(manager, first);
        Assert.Equal(2, manager.Stats().CachedBlocks);
        int[] second = [.. first, 500, 501, 502];
        Assert.Equal(8, Reused(manager, second));
        // Different from the first token on: nothing to reuse.
        Assert.Equal(0, Reused(manager, Prompt(10, 2)));
    }

    [Fact]
    public void AnExactMultiplePromptKeepsItsLastBlockToCompute()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 16);
        int[] prompt = Prompt(8, 1);
        Publish(manager, prompt);
        Assert.Equal(4, Reused(manager, prompt, extra: 3));
        Assert.Equal(8, Reused(manager, [.. prompt, 9]));
        Assert.Equal(0, Reused(manager, prompt[..4]));
    }

    [Fact]
    public void ASameFirstBlockWithADifferentSecondReusesOne()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 16);
        int[] prompt = Prompt(12, 1);
        Publish(manager, prompt);
        int[] other = [.. prompt[..4], 900, 901, 902, 903, .. prompt[8..]];
        Assert.Equal(4, Reused(manager, other));
        // A second block equal to the first one's tokens, but after a different first block: no hit at all.
        int[] shifted = [.. prompt[4..8], .. prompt[4..8], 1];
        Assert.Equal(0, Reused(manager, shifted));
    }

    [Fact]
    public void WithoutReuseNothingIsLookedUp()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 16);
        int[] prompt = Prompt(9, 1);
        Publish(manager, prompt);
        PagedLatentCache cache = manager.TryStart(prompt, 9, reusePrefix: false)!;
        Assert.Equal(0, cache.CachedPrefix);
        Assert.Equal(0, cache.Length);
        Assert.Equal((0L, 0L), (manager.Stats().LookupTokens, manager.Stats().HitTokens));
    }

    [Fact]
    public void PublishingTheSameContentTwiceKeepsOneCopy()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 16);
        int[] prompt = Prompt(9, 1);
        PagedLatentCache a = manager.TryStart(prompt, 9, reusePrefix: false)!, b = manager.TryStart(prompt, 9, reusePrefix: false)!;
        CacheFixture.Fill(a, prompt, Layers);
        CacheFixture.Fill(b, prompt, Layers);
        manager.Publish(a, prompt);
        manager.Publish(b, prompt);
        manager.Publish(a, prompt);
        Assert.Equal(6, manager.Stats().UsedBlocks);
        manager.Release(a);
        manager.Release(b);
        Assert.Equal(new LatentCacheStats(16, 0, 2, 16, 0, 0), manager.Stats());
        Assert.Equal(8, Reused(manager, prompt));
    }

    [Fact]
    public void PublishNeedsThePromptWrittenAndTheSamePrompt()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 16);
        Publish(manager, Prompt(9, 1));
        int[] prompt = Prompt(13, 1);
        PagedLatentCache cache = manager.TryStart(prompt, 16, reusePrefix: true)!;
        Assert.Equal(8, cache.Length);
        Assert.Throws<InvalidOperationException>(() => manager.Publish(cache, prompt));
        CacheFixture.Fill(cache, prompt, Layers);
        int[] other = [.. prompt];
        other[1]++;
        Assert.Throws<ArgumentException>(() => manager.Publish(cache, other));
        manager.Publish(cache, prompt);
        manager.Release(cache);
        Assert.Equal(12, Reused(manager, [.. prompt, 5]));
    }

    [Fact]
    public void SharedAndPublishedBlocksAreReadOnly()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 16);
        int[] prompt = Prompt(10, 1);
        PagedLatentCache publisher = manager.TryStart(prompt, 12, reusePrefix: false)!;
        CacheFixture.Fill(publisher, prompt, Layers);
        manager.Publish(publisher, prompt);
        var row = new float[publisher.RowSize];
        Assert.Throws<InvalidOperationException>(() => publisher.Write(0, 7, row));
        publisher.Write(0, 8, row);

        PagedLatentCache reader = manager.TryStart(prompt, 12, reusePrefix: true)!;
        Assert.Equal(8, reader.CachedPrefix);
        // Shared blocks count once.
        Assert.Equal(3, manager.Stats().UsedBlocks);
        reader.Reserve(10);
        var e = Assert.Throws<InvalidOperationException>(() => reader.Write(1, 3, row));
        Assert.Contains("shared", e.Message);
        var bytes = new byte[2 * reader.BytesPerRow];
        Assert.Throws<InvalidOperationException>(() => reader.WriteRaw(2, 7, 2, bytes));
        reader.WriteRaw(2, 8, 2, bytes);
        CacheFixture.AssertHolds(reader, prompt, 8, Layers);
    }

    [Fact]
    public void ReleasingTwiceOrElsewhereThrows()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 4), other = CacheFixture.Manager(blocks: 4);
        PagedLatentCache cache = manager.TryStart([1, 2], 4, reusePrefix: false)!;
        Assert.Throws<InvalidOperationException>(() => other.Release(cache));
        Assert.Throws<InvalidOperationException>(() => other.Publish(cache, [1, 2]));
        manager.Release(cache);
        Assert.Contains("already released", Assert.Throws<InvalidOperationException>(() => manager.Release(cache)).Message);
        Assert.Throws<InvalidOperationException>(() => cache.Reserve(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Read(0, 0, new float[cache.RowSize]));
    }

    [Fact]
    public void EvictionTakesTheLeastRecentlyUsedAndAChainsTailFirst()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 5);
        int[] a = Prompt(8, 1), b = Prompt(8, 2);
        Publish(manager, a);
        Publish(manager, b);
        Assert.Equal(new LatentCacheStats(5, 0, 4, 5, 0, 0), manager.Stats());
        // Using a's blocks again makes them the most recent: b's are evicted first, b's second block before its first.
        Assert.Equal(8, Reused(manager, [.. a, 1]));
        PagedLatentCache taker = manager.TryStart([7], 4, reusePrefix: false)!;
        taker.Reserve(4);
        Assert.Equal(new LatentCacheStats(5, 1, 4, 4, 9, 8), manager.Stats());
        PagedLatentCache second = manager.TryStart([8], 4, reusePrefix: false)!;
        second.Reserve(4);
        Assert.Equal(new LatentCacheStats(5, 2, 3, 3, 9, 8), manager.Stats());
        manager.Release(second);
        manager.Release(taker);
        Assert.Equal(4, Reused(manager, [.. b, 1]));
        Assert.Equal(8, Reused(manager, [.. a, 1]));
    }

    [Fact]
    public void AHitOnACachedBlockTakesItOutOfTheAvailable()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 3);
        int[] a = Prompt(8, 1);
        Publish(manager, a);
        // Two shared blocks and one own: all three, though two are cached and one free.
        PagedLatentCache cache = manager.TryStart([.. a, 1], 9, reusePrefix: true)!;
        Assert.Equal(new LatentCacheStats(3, 2, 0, 0, 9, 8), manager.Stats());
        Assert.Null(manager.TryStart([2], 1, reusePrefix: false));
        manager.Release(cache);
        Assert.Equal(new LatentCacheStats(3, 0, 2, 3, 9, 8), manager.Stats());
    }

    [Fact]
    public void SequencesWriteAndReadFromSeveralThreads()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 64);
        int[] shared = Prompt(12, 1);
        Publish(manager, shared);
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            for (int round = 0; round < 20; round++)
            {
                int[] prompt = [.. shared[..(4 + i % 8)], .. Prompt(3 + round % 5, 100 + i)];
                PagedLatentCache? cache = manager.TryStart(prompt, prompt.Length + 2, reusePrefix: true);
                if (cache is null) continue;
                CacheFixture.Fill(cache, prompt, Layers);
                CacheFixture.AssertHolds(cache, prompt, prompt.Length, Layers);
                manager.Release(cache);
            }
        });
        LatentCacheStats stats = manager.Stats();
        Assert.Equal(0, stats.UsedBlocks);
        Assert.Equal(64, stats.AvailableBlocks);
        Assert.True(stats.HitTokens > 0);
    }
}
