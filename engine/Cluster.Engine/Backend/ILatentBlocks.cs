using Cluster.Engine.Cache;

namespace Cluster.Engine.Backend;

/// <summary>
/// The block memory of a node's paged latent cache, owned by the backend (host arrays on the CPU, device memory
/// on a GPU). <see cref="LatentCacheManager"/> only hands out block ids; everything stored lives here. Within a
/// block the rows are laid out [layer][position][row], so one layer's rows of a block are one contiguous run.
/// </summary>
public interface ILatentBlocks : ILatentMemory
{
    int Blocks { get; }
    int Layers { get; }
    LatentFormat Format { get; }

    /// <summary>Stored bytes of one row: RowSize values in Format.</summary>
    int BytesPerRow { get; }

    /// <summary>Copies <paramref name="count"/> rows of one layer from <paramref name="slot"/> on (one block) as stored, little-endian.</summary>
    void ReadRaw(int layer, int slot, int count, Span<byte> destination);

    /// <summary>Stores <paramref name="count"/> rows of one layer from <paramref name="slot"/> on (one block) from their stored bytes.</summary>
    void WriteRaw(int layer, int slot, int count, ReadOnlySpan<byte> source);

    /// <summary>
    /// Makes every block's memory resident now rather than at its first use, so a serving node holds the whole budget
    /// it claims from the start (no page faults in later steps, no out-of-memory kill at the first busy hour).
    /// </summary>
    void Reserve();
}
