using Cluster.Engine.Cache;
using Cluster.Engine.Config;
using Cluster.Engine.Tensors;
using Cluster.Engine.Tests.Model;

namespace Cluster.Engine.Tests.Cache;

/// <summary>
/// Managers sized in blocks of the tiny model, and rows that are a function of the token prefix they belong to,
/// so any row read back shows whether it holds that prefix's content (exact in BF16).
/// </summary>
internal static class CacheFixture
{
    public static ModelConfig Config => TinyModel.Config(DType.BF16);

    public static LatentCacheManager Manager(int blocks, int blockSize = 4, LatentFormat format = LatentFormat.BF16)
    {
        long blockBytes = (long)Config.NumHiddenLayers * blockSize * (Config.KvLoraRank + Config.QkRopeHeadDim) * format.BytesPerValue();
        return new LatentCacheManager(Config, new LatentCacheOptions { BlockSize = blockSize, BudgetBytes = blocks * blockBytes, Format = format });
    }

    /// <summary>The row of <paramref name="layer"/> at the last position of <paramref name="prefix"/>.</summary>
    public static float[] RowFor(ReadOnlySpan<int> prefix, int layer, int rowSize)
    {
        ulong h = 0xCBF2_9CE4_8422_2325UL ^ (ulong)layer;
        foreach (int t in prefix) h = (h ^ (uint)t) * 0x100_0000_01B3UL;
        var row = new float[rowSize];
        for (int j = 0; j < rowSize; j++)
        {
            h = (h ^ (uint)j) * 0x100_0000_01B3UL;
            row[j] = (sbyte)(h >> 56) / 16f;
        }
        return row;
    }

    /// <summary>Writes the rows of positions [Length, tokens.Length) in every layer and advances.</summary>
    public static void Fill(ILatentCache cache, ReadOnlySpan<int> tokens, int layers)
    {
        cache.Reserve(tokens.Length);
        for (int p = cache.Length; p < tokens.Length; p++)
            for (int l = 0; l < layers; l++) cache.Write(l, p, RowFor(tokens[..(p + 1)], l, cache.RowSize));
        cache.Advance(tokens.Length - cache.Length);
    }

    /// <summary>Asserts that positions [0, count) hold the rows of <paramref name="tokens"/>'s prefixes.</summary>
    public static void AssertHolds(ILatentCache cache, ReadOnlySpan<int> tokens, int count, int layers)
    {
        var row = new float[cache.RowSize];
        for (int p = 0; p < count; p++)
            for (int l = 0; l < layers; l++)
            {
                cache.Read(l, p, row);
                Assert.Equal(RowFor(tokens[..(p + 1)], l, cache.RowSize), row);
            }
    }
}
