using Cluster.Engine.Config;

namespace Cluster.Engine.Cache;

/// <summary>
/// The paged latent cache of one node: fixed-size blocks within a byte budget, handed to sequences as
/// <see cref="PagedLatentCache"/>s, and a prefix cache: the full blocks of a published prompt are indexed by
/// the hash chain of their tokens, shared read-only with later sequences whose prompt starts the same way, kept
/// after their sequence ends and evicted least recently used. Thread-safe.
/// </summary>
public sealed class LatentCacheManager
{
    public LatentCacheManager(ModelConfig config, LatentCacheOptions options) => throw new NotImplementedException();

    public int BlockSize => throw new NotImplementedException();
    public int TotalBlocks => throw new NotImplementedException();
    /// <summary>Bytes of one block: every layer of BlockSize rows.</summary>
    public long BlockBytes => throw new NotImplementedException();
    public LatentFormat Format => throw new NotImplementedException();
    public int Layers => throw new NotImplementedException();
    public int RowSize => throw new NotImplementedException();

    /// <summary>Blocks that hold <paramref name="tokens"/> positions.</summary>
    public int BlocksFor(int tokens) => throw new NotImplementedException();

    /// <summary>
    /// Starts a sequence that may grow to <paramref name="maxLength"/> positions, reserving every block it can
    /// need, or returns null when they are not available now. With <paramref name="reusePrefix"/> the longest
    /// published prefix of whole blocks of <paramref name="prompt"/> is shared (tokens compared, not only hashes),
    /// never the whole prompt: at least one token is left to compute, since its logits are needed. The returned
    /// cache's Length and CachedPrefix are the reused tokens.
    /// </summary>
    public PagedLatentCache? TryStart(ReadOnlySpan<int> prompt, int maxLength, bool reusePrefix) => throw new NotImplementedException();

    /// <summary>After every position of <paramref name="prompt"/> is written: indexes its full blocks for later sequences.</summary>
    public void Publish(PagedLatentCache cache, ReadOnlySpan<int> prompt) => throw new NotImplementedException();

    /// <summary>Ends a sequence: its blocks go back; published ones stay cached until space is needed.</summary>
    public void Release(PagedLatentCache cache) => throw new NotImplementedException();

    public LatentCacheStats Stats() => throw new NotImplementedException();
}
