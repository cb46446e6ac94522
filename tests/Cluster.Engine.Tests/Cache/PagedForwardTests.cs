using Cluster.Engine.Cache;
using Cluster.Engine.Model;
using Cluster.Engine.Tests.Model;

namespace Cluster.Engine.Tests.Cache;

public class PagedForwardTests
{
    private const int BlockSize = 4;

    private static LatentCacheManager Manager(Transformer m, LatentFormat format = LatentFormat.BF16) =>
        new(m.Config, new LatentCacheOptions { BlockSize = BlockSize, BudgetBytes = 1 << 20, Format = format });

    private static readonly AttentionPath[] BothPaths = [AttentionPath.Naive, AttentionPath.Absorbed];
    private static readonly AttentionPath[] NaiveOnly = [AttentionPath.Naive];

    /// <summary>
    /// Every logit of a chunked prefill (chunk sizes and attention paths taken in turn) and then of single-token
    /// decode steps, so rows are written and read across block boundaries.
    /// </summary>
    private static float[] Run(Transformer m, ILatentCache cache, int[] tokens, int[] chunks, AttentionPath[] paths, int decodeFrom)
    {
        int vocab = m.Config.VocabSize, start = cache.Length;
        var logits = new float[(tokens.Length - start) * vocab];
        int done = start, chunk = 0;
        while (done < decodeFrom)
        {
            int count = Math.Min(chunks[chunk % chunks.Length], decodeFrom - done);
            AttentionPath path = paths[chunk++ % paths.Length];
            m.Prefill(tokens.AsSpan(done, count), cache, path, logits.AsSpan((done - start) * vocab, count * vocab));
            done += count;
        }
        ILatentCache[] caches = [cache];
        for (; done < tokens.Length; done++) m.Decode(tokens.AsSpan(done, 1), caches, logits.AsSpan((done - start) * vocab, vocab));
        Assert.Equal(tokens.Length, cache.Length);
        return logits;
    }

    private static void AssertBitwiseEqual(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"logit {i}: {expected[i]:R} != {actual[i]:R}");
    }

    [Theory]
    [InlineData(LatentFormat.BF16)]
    [InlineData(LatentFormat.F32)]
    public void PagedForwardEqualsTheSequenceCacheBitForBit(LatentFormat format)
    {
        Transformer m = TinyModel.Load();
        int[] tokens = TinyModel.Tokens;
        int[] chunks = [3, 4];
        float[] expected = Run(m, new SequenceCache(m.Config, 2, format), tokens, chunks, BothPaths, decodeFrom: 6);
        PagedLatentCache paged = Manager(m, format).TryStart(tokens.AsSpan(0, 6), tokens.Length, reusePrefix: false)!;
        AssertBitwiseEqual(expected, Run(m, paged, tokens, chunks, BothPaths, decodeFrom: 6));
    }

    /// <summary>A cache that only has the interface's own row-by-row ReadRows.</summary>
    private sealed class RowByRow(ILatentCache inner) : ILatentCache
    {
        public int RowSize => inner.RowSize;
        public int Length => inner.Length;
        public void Reserve(int length) => inner.Reserve(length);
        public void Write(int layer, int position, ReadOnlySpan<float> row) => inner.Write(layer, position, row);
        public void Read(int layer, int position, Span<float> row) => inner.Read(layer, position, row);
        public void Advance(int count) => inner.Advance(count);
    }

    [Fact]
    public void RowByRowReadsGiveTheSameForward()
    {
        Transformer m = TinyModel.Load();
        int[] tokens = TinyModel.Tokens;
        float[] expected = Run(m, new SequenceCache(m.Config, format: LatentFormat.BF16), tokens, [3, 4], BothPaths, decodeFrom: 6);
        var cache = new RowByRow(new SequenceCache(m.Config, format: LatentFormat.BF16));
        AssertBitwiseEqual(expected, Run(m, cache, tokens, [3, 4], BothPaths, decodeFrom: 6));
    }

    [Fact]
    public void Bf16CacheStaysCloseToF32()
    {
        Transformer m = TinyModel.Load();
        int[] tokens = TinyModel.Tokens;
        float[] f32 = Run(m, new SequenceCache(m.Config), tokens, [6], BothPaths, decodeFrom: 6);
        float[] bf16 = Run(m, new SequenceCache(m.Config, format: LatentFormat.BF16), tokens, [6], BothPaths, decodeFrom: 6);
        double error = TinyModel.RelativeError(bf16, f32);
        // BF16 keeps 8 significant bits of each cached value: the logits move, but only by about that rounding.
        Assert.True(error > 0, "the BF16 cache should round");
        Assert.InRange(error, 0, 2e-2);
    }

    [Fact]
    public void PrefixHitComputesOnlyTheRestAndMatchesAColdRun()
    {
        Transformer m = TinyModel.Load();
        LatentCacheManager manager = Manager(m);
        int[] first = TinyModel.Tokens;                     // 10 tokens: 2.5 blocks
        int[] second = [.. first, 11, 12, 13, 14];
        int[] chunks = [2 * BlockSize, 64];

        PagedLatentCache publisher = manager.TryStart(first, first.Length, reusePrefix: true)!;
        Assert.Equal(0, publisher.CachedPrefix);
        Run(m, publisher, first, chunks, NaiveOnly, decodeFrom: first.Length);
        manager.Publish(publisher, first);
        manager.Release(publisher);
        Assert.Equal(2, manager.Stats().CachedBlocks);

        PagedLatentCache warm = manager.TryStart(second, second.Length + 2, reusePrefix: true)!;
        Assert.Equal(2 * BlockSize, warm.CachedPrefix);
        Assert.Equal(2 * BlockSize, warm.Length);
        LatentCacheStats stats = manager.Stats();
        Assert.Equal(first.Length + second.Length, stats.LookupTokens);
        Assert.Equal(2 * BlockSize, stats.HitTokens);
        int[] continued = [.. second, 40, 41];
        float[] warmLogits = Run(m, warm, continued, [64], NaiveOnly, decodeFrom: second.Length);

        // The cold run computes the first two blocks in the same chunk as the publisher did, so every row (and
        // every logit after them) is computed by the same operations: equal bit for bit.
        PagedLatentCache cold = manager.TryStart(second, second.Length + 2, reusePrefix: false)!;
        Assert.Equal(0, cold.CachedPrefix);
        float[] coldLogits = Run(m, cold, continued, chunks, NaiveOnly, decodeFrom: second.Length);
        int vocab = m.Config.VocabSize;
        AssertBitwiseEqual(coldLogits.AsSpan(2 * BlockSize * vocab).ToArray(), warmLogits);

        // One chunk for the whole prompt groups tokens differently in the matmuls, so float rounding differs (about
        // 1e-7 here) and a cached value may even fall on the other side of a BF16 rounding step: close, not equal.
        float[] oneChunk = Run(m, new SequenceCache(m.Config, format: LatentFormat.BF16), continued, [64], NaiveOnly, decodeFrom: second.Length);
        Assert.InRange(TinyModel.RelativeError(warmLogits, oneChunk.AsSpan(2 * BlockSize * vocab).ToArray()), 0, 1e-3);
    }

    [Fact]
    public void LayerRowsAreWrittenBeforeTheLayerIsReported()
    {
        Transformer m = TinyModel.Load();
        PagedLatentCache cache = Manager(m).TryStart(TinyModel.Tokens, TinyModel.Tokens.Length, reusePrefix: false)!;
        var reported = new List<int>();
        var row = new float[cache.RowSize];
        m.Prefill(TinyModel.Tokens, cache, AttentionPath.Naive, new float[m.Config.VocabSize], lastRowOnly: true, layerDone: layer =>
        {
            reported.Add(layer);
            // Reading raw rows of a finished layer is what a prefill node streams while later layers run.
            var bytes = new byte[TinyModel.Tokens.Length * cache.BytesPerRow];
            cache.ReadRaw(layer, 0, TinyModel.Tokens.Length, bytes);
            cache.Read(layer, TinyModel.Tokens.Length - 1, row);
            Assert.Contains(row, v => v != 0);
        });
        Assert.Equal(Enumerable.Range(0, m.Config.NumHiddenLayers), reported);
    }
}
