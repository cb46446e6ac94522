using Cluster.Engine.Cache;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// Where sequences get their latent cache. A paged block manager with prefix reuse can replace the
/// per-sequence pool without the scheduler changing.
/// </summary>
public interface ICachePool
{
    /// <summary>A cache for a new sequence expected to reach about <paramref name="expectedLength"/> positions.</summary>
    ILatentCache Rent(int expectedLength);

    /// <summary>Frees a cache handed out by <see cref="Rent"/>.</summary>
    void Return(ILatentCache cache);

    /// <summary>Bytes held by the caches handed out and not returned.</summary>
    long BytesInUse { get; }

    /// <summary>Caches handed out and not returned.</summary>
    int InUse { get; }
}
