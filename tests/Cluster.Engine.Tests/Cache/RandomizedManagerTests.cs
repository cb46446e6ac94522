using Cluster.Engine.Cache;

namespace Cluster.Engine.Tests.Cache;

/// <summary>
/// Seeded random starts, fills, decode steps, publishes and releases against a small budget (so sequences are
/// refused and cached blocks evicted), checked after every step against what a simple model of the live
/// sequences says: block accounting, hit statistics, and the content of every row a sequence can read.
/// </summary>
public class RandomizedManagerTests
{
    private const int BlockSize = 4, TotalBlocks = 12;
    private static readonly int Layers = CacheFixture.Config.NumHiddenLayers;

    private sealed class Live(PagedLatentCache cache, int[] prompt, bool reused)
    {
        public PagedLatentCache Cache { get; } = cache;
        public int[] Prompt { get; } = prompt;
        public bool Reused { get; } = reused;
        public List<int> Tokens { get; } = [.. prompt[..cache.CachedPrefix]];
        public int Reserved { get; set; } = cache.CachedPrefix;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void StatisticsAndRowsFollowTheModel(int seed)
    {
        var random = new Random(seed);
        LatentCacheManager manager = CacheFixture.Manager(TotalBlocks, BlockSize);
        int[][] bases = [.. Enumerable.Range(0, 3).Select(k => Enumerable.Range(0, 16).Select(i => (i * 37 + k * 101) % 1000).ToArray())];
        var published = new HashSet<string>();
        var live = new List<Live>();
        long lookups = 0, hits = 0;
        int refused = 0, reusedBlocks = 0;

        for (int step = 0; step < 1500; step++)
        {
            int op = random.Next(6);
            if (op == 0 || live.Count == 0)
            {
                int[] prompt = [.. bases[random.Next(bases.Length)][..random.Next(1, 15)], .. Enumerable.Range(0, random.Next(3)).Select(_ => random.Next(1, 3))];
                bool reuse = random.Next(4) != 0;
                int maxLength = prompt.Length + random.Next(5);
                LatentCacheStats before = manager.Stats();
                PagedLatentCache? cache = manager.TryStart(prompt, maxLength, reuse);
                if (cache is null)
                {
                    Assert.True(manager.BlocksFor(maxLength) > before.AvailableBlocks, $"refused {manager.BlocksFor(maxLength)} blocks with {before.AvailableBlocks} available");
                    refused++;
                }
                else
                {
                    int prefix = cache.CachedPrefix;
                    Assert.Equal(0, prefix % BlockSize);
                    Assert.InRange(prefix, 0, reuse ? (prompt.Length - 1) / BlockSize * BlockSize : 0);
                    if (prefix > 0) Assert.Contains(Key(prompt, prefix), published);
                    Assert.Equal(prefix, cache.Length);
                    if (reuse) lookups += prompt.Length;
                    hits += prefix;
                    reusedBlocks += prefix / BlockSize;
                    live.Add(new Live(cache, prompt, reuse));
                }
            }
            else
            {
                Live s = live[random.Next(live.Count)];
                bool prefilled = s.Cache.Length >= s.Prompt.Length;
                switch (op)
                {
                    case 1 or 2 when !prefilled:
                        s.Tokens.Clear();
                        s.Tokens.AddRange(s.Prompt);
                        CacheFixture.Fill(s.Cache, s.Prompt, Layers);
                        s.Reserved = Math.Max(s.Reserved, s.Prompt.Length);
                        break;
                    case 1 or 2 when s.Cache.Length < s.Cache.MaxLength:
                        s.Tokens.Add(random.Next(1, 3));
                        CacheFixture.Fill(s.Cache, s.Tokens.ToArray(), Layers);
                        s.Reserved = Math.Max(s.Reserved, s.Tokens.Count);
                        break;
                    case 3 when prefilled:
                        manager.Publish(s.Cache, s.Prompt);
                        for (int p = BlockSize; p <= s.Prompt.Length; p += BlockSize) published.Add(Key(s.Prompt, p));
                        break;
                    case 4 or 5:
                        CacheFixture.AssertHolds(s.Cache, s.Tokens.ToArray(), s.Cache.Length, Layers);
                        manager.Release(s.Cache);
                        live.Remove(s);
                        break;
                }
            }
            Check(manager, live, lookups, hits);
        }
        foreach (Live s in live) manager.Release(s.Cache);
        LatentCacheStats end = manager.Stats();
        Assert.Equal(0, end.UsedBlocks);
        Assert.Equal(TotalBlocks, end.AvailableBlocks);
        // The walk must have exercised refusals and prefix hits, or it proves little.
        Assert.True(refused > 0 && reusedBlocks > 0, $"{refused} refusals, {reusedBlocks} reused blocks");
    }

    private static string Key(int[] prompt, int length) => string.Join(',', prompt[..length]);

    private static void Check(LatentCacheManager manager, List<Live> live, long lookups, long hits)
    {
        int promised = 0, allocated = 0, own = 0;
        foreach (Live s in live)
        {
            int held = manager.BlocksFor(Math.Max(s.Reserved, s.Cache.CachedPrefix));
            promised += manager.BlocksFor(s.Cache.MaxLength) - held;
            allocated += held;
            own += held - s.Cache.CachedPrefix / BlockSize;
        }
        LatentCacheStats stats = manager.Stats();
        // Used + cached + free == total, where free = available + promised - cached.
        Assert.Equal(TotalBlocks, stats.UsedBlocks + stats.AvailableBlocks + promised);
        Assert.InRange(stats.UsedBlocks, own, allocated);
        Assert.InRange(stats.CachedBlocks, 0, TotalBlocks - stats.UsedBlocks);
        Assert.InRange(stats.AvailableBlocks, 0, TotalBlocks);
        Assert.Equal(lookups, stats.LookupTokens);
        Assert.Equal(hits, stats.HitTokens);
    }
}
