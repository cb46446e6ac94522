using Cluster.AttentionNode.Transfer;

namespace Cluster.AttentionNode.Tests;

public sealed class KvChecksumTests
{
    private static ulong Of(params byte[][] slices)
    {
        var c = new KvChecksum();
        foreach (byte[] s in slices) c.Append(s);
        return c.Value;
    }

    [Fact]
    public void SameSlicesSameSumAndAnyChangeShowsUp()
    {
        var rng = new Random(3);
        byte[] a = new byte[1000], b = new byte[37];
        rng.NextBytes(a);
        rng.NextBytes(b);
        ulong sum = Of(a, b);
        Assert.Equal(sum, Of(a, b));
        Assert.NotEqual(sum, Of(b, a));
        Assert.NotEqual(sum, Of(a));
        Assert.NotEqual(sum, Of(a, b, []));
        // A flipped bit in the word-sized body and in the tail.
        foreach (int at in new[] { 0, 999 })
        {
            byte[] changed = (byte[])a.Clone();
            changed[at] ^= 1;
            Assert.NotEqual(sum, Of(changed, b));
        }
        byte[] tail = (byte[])b.Clone();
        tail[36] ^= 0x80;
        Assert.NotEqual(sum, Of(a, tail));
        // The same bytes cut differently are different slices.
        Assert.NotEqual(Of([.. a, .. b]), sum);
    }
}
