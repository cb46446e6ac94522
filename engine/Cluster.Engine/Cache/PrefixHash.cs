namespace Cluster.Engine.Cache;

/// <summary>
/// The hash chain over a prompt's whole blocks: h_i = Next(h_{i-1}, tokens of block i), so a block's hash
/// names its whole prefix. 64-bit, with the murmur3 finaliser as the mixing step (every input bit reaches every
/// output bit); the index still compares tokens, so a collision costs a miss, never a wrong hit.
/// </summary>
internal static class PrefixHash
{
    /// <summary>The hash before the first block.</summary>
    public const ulong Start = 0x6A09_E667_F3BC_C908;

    private const ulong Step = 0x9E37_79B9_7F4A_7C15;

    public static ulong Next(ulong previous, ReadOnlySpan<int> tokens)
    {
        ulong h = Mix(previous ^ ((ulong)tokens.Length * Step));
        // Adding a constant before mixing keeps a zero state from absorbing zero tokens.
        foreach (int t in tokens) h = Mix((h ^ (uint)t) + Step);
        return h;
    }

    private static ulong Mix(ulong h)
    {
        h ^= h >> 33;
        h *= 0xFF51_AFD7_ED55_8CCD;
        h ^= h >> 33;
        h *= 0xC4CE_B9FE_1A85_EC53;
        h ^= h >> 33;
        return h;
    }
}
