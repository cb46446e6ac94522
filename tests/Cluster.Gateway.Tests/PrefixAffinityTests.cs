using Cluster.Gateway.Nodes;

namespace Cluster.Gateway.Tests;

public sealed class PrefixAffinityTests
{
    private static uint[] Tokens(int first, int count) => [.. Enumerable.Range(first, count).Select(i => (uint)i)];

    [Fact]
    public void Chains_agree_exactly_as_far_as_prompts_share_whole_blocks()
    {
        uint[] a = Tokens(0, 40), b = [.. a];
        b[21] = 999;
        ulong[] ca = PrefixHashChain.Compute(a, 8), cb = PrefixHashChain.Compute(b, 8);
        Assert.Equal(5, ca.Length);
        Assert.Equal(ca[..2], cb[..2]);
        for (int i = 2; i < 5; i++) Assert.NotEqual(ca[i], cb[i]);
        // A partial last block has no hash.
        Assert.Equal(ca[..4], PrefixHashChain.Compute(a[..39], 8));
    }

    [Fact]
    public void The_expected_hit_is_the_leading_run_and_eviction_cuts_chains_from_their_end()
    {
        var affinity = new PrefixAffinity(capacity: 6);
        ulong[] first = PrefixHashChain.Compute(Tokens(0, 32), 8);
        affinity.Add(first);
        Assert.Equal(4, affinity.CachedBlocks(first));
        Assert.Equal(2, affinity.CachedBlocks(PrefixHashChain.Compute([.. Tokens(0, 16), .. Tokens(500, 16)], 8)));
        Assert.Equal(0, affinity.CachedBlocks(PrefixHashChain.Compute(Tokens(1, 32), 8)));

        // Four more blocks overflow the bound of six: the first prompt loses its last two blocks, not its first.
        affinity.Add(PrefixHashChain.Compute(Tokens(1000, 32), 8));
        Assert.Equal(6, affinity.Count);
        Assert.Equal(2, affinity.CachedBlocks(first));
    }
}
