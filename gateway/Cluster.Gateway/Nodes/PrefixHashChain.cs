namespace Cluster.Gateway.Nodes;

/// <summary>
/// A prompt's identity for prefix caching: one hash per whole block of tokens, each covering every token from the
/// start through its block, so two prompts share a leading run of hashes exactly as far as they share whole blocks.
/// The gateway's own estimate of what a node caches; it need not match the node's hashes.
/// </summary>
public static class PrefixHashChain
{
    public static ulong[] Compute(IReadOnlyList<uint> tokens, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        var chain = new ulong[tokens.Count / blockSize];
        ulong h = 0x9E3779B97F4A7C15UL;
        for (int b = 0, t = 0; b < chain.Length; b++)
        {
            for (int end = t + blockSize; t < end; t++) h = Mix(h ^ tokens[t]);
            chain[b] = h;
        }
        return chain;
    }

    // splitmix64's finalizer: every input bit moves about half the output bits, so chained tokens do not cancel.
    private static ulong Mix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
