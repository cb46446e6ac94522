namespace Cluster.Engine.Cache;

/// <summary>
/// One sequence's latent cache over blocks of a <see cref="LatentCacheManager"/>: a block table, the first
/// CachedPrefix positions possibly shared with other sequences (read-only), the rest its own.
/// </summary>
public sealed class PagedLatentCache : ILatentCache
{
    private PagedLatentCache() { }

    public int RowSize => throw new NotImplementedException();
    public int Length => throw new NotImplementedException();
    /// <summary>Leading positions taken from the prefix cache.</summary>
    public int CachedPrefix => throw new NotImplementedException();
    /// <summary>The most positions this sequence reserved.</summary>
    public int MaxLength => throw new NotImplementedException();
    public LatentFormat Format => throw new NotImplementedException();
    /// <summary>Stored bytes of one row: RowSize values in Format.</summary>
    public int BytesPerRow => throw new NotImplementedException();

    public Span<float> Row(int layer, int position) => throw new NotSupportedException("removed with the BF16 cache");
    public void Reserve(int length) => throw new NotImplementedException();
    public void Write(int layer, int position, ReadOnlySpan<float> row) => throw new NotImplementedException();
    public void Read(int layer, int position, Span<float> row) => throw new NotImplementedException();
    public void Advance(int count) => throw new NotImplementedException();

    /// <summary>Copies rows [start, start + count) of one layer as stored (row-major, little-endian) into <paramref name="destination"/>.</summary>
    public void ReadRaw(int layer, int start, int count, Span<byte> destination) => throw new NotImplementedException();

    /// <summary>Stores rows [start, start + count) of one layer from their stored bytes (reserved positions, not shared ones).</summary>
    public void WriteRaw(int layer, int start, int count, ReadOnlySpan<byte> source) => throw new NotImplementedException();
}
