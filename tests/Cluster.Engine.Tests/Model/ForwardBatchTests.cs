using Cluster.Engine.Backend;
using Cluster.Engine.Cache;
using Cluster.Engine.Model;

namespace Cluster.Engine.Tests.Model;

/// <summary>The forward pass over plain arrays: block tables and slot mapping written by hand, against the cache adapters.</summary>
public class ForwardBatchTests
{
    private const int BlockSize = 4;

    private static LatentCacheManager Manager(Transformer m) =>
        new(m.Config, new LatentCacheOptions { BlockSize = BlockSize, BudgetBytes = 1 << 20, Format = LatentFormat.BF16 });

    /// <summary>The slots of positions [start, start + count) through a block table.</summary>
    private static int[] Slots(ReadOnlySpan<int> table, int start, int count)
    {
        var slots = new int[count];
        for (int i = 0; i < count; i++) slots[i] = table[(start + i) / BlockSize] * BlockSize + (start + i) % BlockSize;
        return slots;
    }

    [Fact]
    public void HandBuiltBatchEqualsPrefillBitForBit()
    {
        Transformer m = TinyModel.Load();
        int[] tokens = TinyModel.Tokens;
        int n = tokens.Length, vocab = m.Config.VocabSize;
        var expected = new float[n * vocab];
        m.Prefill(tokens, Manager(m).TryStart(tokens, n, reusePrefix: false)!, AttentionPath.Absorbed, expected);

        // The manager hands out block ids; the rows go to its backend memory at the slots written here.
        LatentCacheManager manager = Manager(m);
        PagedLatentCache cache = manager.TryStart(tokens, n, reusePrefix: false)!;
        cache.Reserve(n);
        int[] table = cache.BlockTable.ToArray();
        int[] positions = Enumerable.Range(0, n).ToArray();
        var batch = new ForwardBatch(tokens, positions, new int[n], Slots(table, 0, n), table, table.Length);
        var actual = new float[n * vocab];
        m.Forward(batch, manager.Memory, AttentionPath.Absorbed, actual);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void OnePassOfAPrefillChunkAndADecodeRowEqualsTheTwoApart()
    {
        Transformer m = TinyModel.Load();
        int[] a = [5, 9, 200, 31, 7, 64], b = [300, 12, 1000, 4, 8];
        int vocab = m.Config.VocabSize;

        // Apart: a's first 3 tokens, then its other 3; b's first 4, then its 5th as a decode step.
        LatentCacheManager apart = Manager(m);
        PagedLatentCache aApart = apart.TryStart(a, a.Length, false)!, bApart = apart.TryStart(b, b.Length, false)!;
        var scratch = new float[4 * vocab];
        m.Prefill(a.AsSpan(0, 3), aApart, AttentionPath.Naive, scratch);
        m.Prefill(b.AsSpan(0, 4), bApart, AttentionPath.Naive, scratch);
        var aChunk = new float[3 * vocab];
        var bStep = new float[vocab];
        m.Prefill(a.AsSpan(3), aApart, AttentionPath.Naive, aChunk);
        m.Decode(b.AsSpan(4), [bApart], bStep);

        // Together: the same first parts, then one pass of a's 3 rows and b's 1 row through two block tables.
        LatentCacheManager manager = Manager(m);
        PagedLatentCache aCache = manager.TryStart(a, a.Length, false)!, bCache = manager.TryStart(b, b.Length, false)!;
        m.Prefill(a.AsSpan(0, 3), aCache, AttentionPath.Naive, scratch);
        m.Prefill(b.AsSpan(0, 4), bCache, AttentionPath.Naive, scratch);
        aCache.Reserve(a.Length);
        bCache.Reserve(b.Length);
        int width = Math.Max(aCache.BlockTable.Length, bCache.BlockTable.Length);
        int[] tables = new int[2 * width];
        tables.AsSpan().Fill(-1);
        aCache.BlockTable.CopyTo(tables);
        bCache.BlockTable.CopyTo(tables.AsSpan(width));
        int[] slots = [.. Slots(aCache.BlockTable, 3, 3), .. Slots(bCache.BlockTable, 4, 1)];
        var batch = new ForwardBatch(new[] { a[3], a[4], a[5], b[4] }, new[] { 3, 4, 5, 4 }, new[] { 0, 0, 0, 1 }, slots, tables, width);
        var together = new float[4 * vocab];
        m.Forward(batch, manager.Memory, AttentionPath.Naive, together);

        // Batch composition changes which matmul kernel runs (fused at 1-2 rows), so within rounding, not bitwise.
        Assert.InRange(TinyModel.RelativeError(together.AsSpan(0, 3 * vocab), aChunk), 0, 1e-5);
        Assert.InRange(TinyModel.RelativeError(together.AsSpan(3 * vocab, vocab), bStep), 0, 1e-5);
    }

    [Fact]
    public void InconsistentArraysAreRejectedNamingThem()
    {
        var e = Assert.Throws<ArgumentException>(() => new ForwardBatch(new[] { 1, 2 }, new[] { 0 }, new[] { 0, 0 }, new[] { 0, 1 }, new[] { 0 }, 1));
        Assert.Contains("2 tokens but 1 positions", e.Message);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => new ForwardBatch(new[] { 1 }, new[] { 0 }, new[] { 1 }, new[] { 0 }, new[] { 0 }, 1));
        Assert.Contains("row 0 names sequence 1 of 1", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ForwardBatch(new[] { 1 }, new[] { 0 }, new[] { 0 }, new[] { 0 }, new[] { 0, 1, 2 }, 2));
        Assert.Contains("not rows of 2", e.Message);
    }

    [Fact]
    public void ASlotOutsideTheBlockMemoryIsRejected()
    {
        Transformer m = TinyModel.Load();
        ILatentBlocks memory = Manager(m).Memory;
        var batch = new ForwardBatch(new[] { 1 }, new[] { 0 }, new[] { 0 }, new[] { memory.Blocks * BlockSize }, new[] { memory.Blocks }, 1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => m.Forward(batch, memory, AttentionPath.Absorbed, new float[m.Config.VocabSize]));
        Assert.Contains("do not lie within one of", e.Message);
    }
}
