using Cluster.Engine.Cache;
using Cluster.Engine.Config;

namespace Cluster.Engine.Tests.Cache;

public class LatentRowStorageTests
{
    /// <summary>A row length with a tail past the vector width, so both load paths run.</summary>
    private static readonly ModelConfig OddRows = CacheFixture.Config with { KvLoraRank = 35 };

    /// <summary>Round to nearest even by exact distances in float64, independent of the engine's bit trick.</summary>
    private static ushort ReferenceBF16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        ushort down = (ushort)(u >> 16);
        if ((u & 0xFFFF) == 0) return down;
        ushort up = (ushort)(down + 1);
        double x = f, a = Widen(down), b = Widen(up);
        double da = Math.Abs(x - a), db = Math.Abs(b - x);
        if (da != db) return da < db ? down : up;
        return (down & 1) == 0 ? down : up;
    }

    private static double Widen(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    private static float[][] Rows(int count, int rowSize, int seed)
    {
        var random = new Random(seed);
        float[] specials = [0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon, 1e-40f, 3.0e38f, 1f, -1f];
        var rows = new float[count][];
        for (int r = 0; r < count; r++)
        {
            rows[r] = new float[rowSize];
            for (int j = 0; j < rowSize; j++)
            {
                float v = (float)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-140, 100)));
                rows[r][j] = (j % 5) switch
                {
                    // Exactly half-way between two BF16 values: the tie cases.
                    0 => BitConverter.UInt32BitsToSingle((BitConverter.SingleToUInt32Bits(v) & 0xFFFF_0000) | 0x8000),
                    1 => specials[random.Next(specials.Length)],
                    _ => v,
                };
            }
        }
        return rows;
    }

    public static TheoryData<string> Caches => new() { "sequence", "paged" };

    private static ILatentCache Create(string kind, LatentFormat format, int length)
    {
        if (kind == "sequence") return new SequenceCache(OddRows, 2, format);
        var manager = new LatentCacheManager(OddRows, new LatentCacheOptions { BlockSize = 3, BudgetBytes = 1 << 20, Format = format });
        return manager.TryStart([], length, reusePrefix: false)!;
    }

    [Theory]
    [MemberData(nameof(Caches))]
    public void Bf16RowsRoundToNearestEven(string kind)
    {
        const int positions = 7;
        ILatentCache cache = Create(kind, LatentFormat.BF16, positions);
        float[][] rows = Rows(positions * OddRows.NumHiddenLayers, cache.RowSize, seed: 11);
        cache.Reserve(positions);
        for (int p = 0; p < positions; p++)
            for (int l = 0; l < OddRows.NumHiddenLayers; l++) cache.Write(l, p, rows[p * OddRows.NumHiddenLayers + l]);
        var read = new float[cache.RowSize];
        for (int p = 0; p < positions; p++)
            for (int l = 0; l < OddRows.NumHiddenLayers; l++)
            {
                cache.Read(l, p, read);
                float[] written = rows[p * OddRows.NumHiddenLayers + l];
                for (int j = 0; j < read.Length; j++)
                    Assert.True(Widen(ReferenceBF16(written[j])) == read[j] && float.IsNegative(read[j]) == float.IsNegative(written[j]),
                        $"layer {l} position {p} value {j}: {written[j]:R} read back as {read[j]:R}");
            }
    }

    [Theory]
    [MemberData(nameof(Caches))]
    public void F32RowsAreExactAndNaNStaysNaN(string kind)
    {
        foreach (LatentFormat format in new[] { LatentFormat.F32, LatentFormat.BF16 })
        {
            ILatentCache cache = Create(kind, format, 2);
            float[] row = Rows(1, cache.RowSize, seed: 3)[0];
            row[4] = float.NaN;
            cache.Reserve(2);
            cache.Write(2, 1, row);
            var read = new float[cache.RowSize];
            cache.Read(2, 1, read);
            Assert.True(float.IsNaN(read[4]));
            if (format == LatentFormat.F32) Assert.Equal(row, read);
        }
    }

    [Theory]
    [MemberData(nameof(Caches))]
    public void RunsOfRowsReadAsRowByRow(string kind)
    {
        const int positions = 8;
        ILatentCache cache = Create(kind, LatentFormat.BF16, positions);
        float[][] rows = Rows(positions, cache.RowSize, seed: 5);
        cache.Reserve(positions);
        for (int p = 0; p < positions; p++) cache.Write(1, p, rows[p]);
        // From inside the first block of three to inside the third.
        var run = new float[5 * cache.RowSize + 7];
        cache.ReadRows(1, 2, 5, run);
        var row = new float[cache.RowSize];
        for (int i = 0; i < 5; i++)
        {
            cache.Read(1, 2 + i, row);
            Assert.Equal(row, run.AsSpan(i * cache.RowSize, cache.RowSize).ToArray());
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.ReadRows(1, 4, 5, run));
        Assert.Throws<ArgumentException>(() => cache.ReadRows(1, 0, 5, run.AsSpan(0, 5 * cache.RowSize - 1)));
    }

    [Fact]
    public void RawRowsCopiedBetweenManagersReadTheSame()
    {
        var config = CacheFixture.Config;
        int layers = config.NumHiddenLayers;
        int[] tokens = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        LatentCacheManager a = CacheFixture.Manager(blocks: 8), b = CacheFixture.Manager(blocks: 8);
        PagedLatentCache source = a.TryStart(tokens, tokens.Length, reusePrefix: false)!;
        CacheFixture.Fill(source, tokens, layers);
        PagedLatentCache target = b.TryStart(tokens, tokens.Length, reusePrefix: false)!;
        target.Reserve(tokens.Length);
        // Runs that start and end inside blocks as well as whole ones.
        (int Start, int Count)[] runs = [(0, 3), (3, 6), (9, 2)];
        foreach ((int start, int count) in runs)
            for (int l = 0; l < layers; l++)
            {
                var bytes = new byte[count * source.BytesPerRow];
                source.ReadRaw(l, start, count, bytes);
                target.WriteRaw(l, start, count, bytes);
            }
        target.Advance(tokens.Length);
        CacheFixture.AssertHolds(target, tokens, tokens.Length, layers);
        var whole = new byte[tokens.Length * source.BytesPerRow];
        var copied = new byte[whole.Length];
        source.ReadRaw(1, 0, tokens.Length, whole);
        target.ReadRaw(1, 0, tokens.Length, copied);
        Assert.Equal(whole, copied);
        Assert.Equal(2 * source.RowSize, source.BytesPerRow);
    }

    [Fact]
    public void RawRunsOutsideTheReservationAreRejected()
    {
        LatentCacheManager manager = CacheFixture.Manager(blocks: 4);
        PagedLatentCache cache = manager.TryStart([1, 2, 3], 8, reusePrefix: false)!;
        cache.Reserve(5);
        var bytes = new byte[8 * cache.BytesPerRow];
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.ReadRaw(0, 2, 4, bytes));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.WriteRaw(0, -1, 2, bytes));
        Assert.Throws<ArgumentException>(() => cache.WriteRaw(0, 0, 4, bytes.AsSpan(0, 3)));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Read(3, 0, new float[cache.RowSize]));
        Assert.Throws<ArgumentException>(() => cache.Write(0, 0, new float[cache.RowSize - 1]));
    }
}
