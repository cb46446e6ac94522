namespace Cluster.Engine.Cache;

/// <summary>
/// A snapshot of a <see cref="LatentCacheManager"/>. Used: held by live sequences. Cached: kept after their
/// sequence ended for prefix reuse (evictable). Available: what a new sequence can still reserve (free + cached,
/// less what admitted sequences were promised and have not allocated yet).
/// </summary>
public readonly record struct LatentCacheStats(int TotalBlocks, int UsedBlocks, int CachedBlocks, int AvailableBlocks, long LookupTokens, long HitTokens);
