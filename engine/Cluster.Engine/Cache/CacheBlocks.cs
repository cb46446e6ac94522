using Cluster.Engine.Backend;

namespace Cluster.Engine.Cache;

/// <summary>
/// Sequences' own caches (<see cref="SequenceCache"/> or any <see cref="ILatentCache"/>) as the latent memory of
/// one forward pass: sequence i of the batch is block i, a block as long as the batch's furthest position, so a
/// slot is i * BlockSize + position and each block table is the single id i. Reused by its owner across passes.
/// </summary>
internal sealed class CacheBlocks : ILatentMemory
{
    private ILatentCache[] _caches = [];

    public int BlockSize { get; private set; }
    public int RowSize { get; private set; }

    public void Set(ILatentCache[] caches, int blockSize)
    {
        _caches = caches;
        BlockSize = blockSize;
        RowSize = caches.Length > 0 && caches[0] is { } first ? first.RowSize : 0;
    }

    public void Write(int layer, int slot, ReadOnlySpan<float> row) => _caches[slot / BlockSize].Write(layer, slot % BlockSize, row);

    public void Read(int layer, int slot, int count, Span<float> rows) => _caches[slot / BlockSize].ReadRows(layer, slot % BlockSize, count, rows);
}
