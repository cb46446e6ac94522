using Cluster.Engine.Backend;

namespace Cluster.Engine.Cache;

/// <summary>
/// One sequence's latent cache over blocks of a <see cref="LatentCacheManager"/>: a block table, the first
/// CachedPrefix positions possibly shared with other sequences (read-only), the rest its own. The rows are in
/// the manager's <see cref="ILatentBlocks"/>; a position's slot there is its block's id * BlockSize + offset.
/// </summary>
/// <remarks>
/// Rows of one sequence may be read from several threads at once (attention over heads); positions are written
/// by the thread running the sequence's forward pass.
/// </remarks>
public sealed class PagedLatentCache : ILatentCache
{
    private readonly int[] _blocks;
    private readonly ILatentBlocks _memory;
    private readonly int _blockSize;
    private int _allocated, _reserved, _readOnly;

    internal PagedLatentCache(LatentCacheManager manager, int maxLength, ReadOnlySpan<int> shared)
    {
        Manager = manager;
        _memory = manager.Memory;
        MaxLength = maxLength;
        RowSize = manager.RowSize;
        Format = manager.Format;
        BytesPerRow = _memory.BytesPerRow;
        _blockSize = manager.BlockSize;
        _blocks = new int[manager.BlocksFor(maxLength)];
        shared.CopyTo(_blocks);
        _allocated = shared.Length;
        CachedPrefix = Length = _reserved = _readOnly = shared.Length * _blockSize;
    }

    public int RowSize { get; }
    public int Length { get; private set; }
    /// <summary>Leading positions taken from the prefix cache.</summary>
    public int CachedPrefix { get; }
    /// <summary>The most positions this sequence reserved.</summary>
    public int MaxLength { get; }
    public LatentFormat Format { get; }
    /// <summary>Stored bytes of one row: RowSize values in Format.</summary>
    public int BytesPerRow { get; }

    /// <summary>The block ids taken so far, by position / BlockSize: what a <see cref="Model.ForwardBatch"/> carries.</summary>
    public ReadOnlySpan<int> BlockTable => _blocks.AsSpan(0, _allocated);

    internal LatentCacheManager Manager { get; }
    internal bool Released { get; private set; }
    internal int AllocatedBlocks => _allocated;
    /// <summary>Blocks promised at start and not taken yet.</summary>
    internal int PendingBlocks => _blocks.Length - _allocated;
    internal int Block(int index) => _blocks[index];

    public void Reserve(int length)
    {
        if (length <= _reserved) return;
        if (Released) throw new InvalidOperationException("the latent cache was released");
        if (length > MaxLength) throw new ArgumentOutOfRangeException(nameof(length), $"sequence of {length} tokens exceeds the {MaxLength} positions reserved for it");
        int blocks = (length + _blockSize - 1) / _blockSize;
        if (blocks > _allocated) Manager.Allocate(this, blocks);
        _reserved = length;
    }

    internal void Attach(int block) => _blocks[_allocated++] = block;

    /// <summary>Positions below <paramref name="positions"/> are published: other sequences may share them from now on.</summary>
    internal void Seal(int positions) => _readOnly = Math.Max(_readOnly, positions);

    internal void MarkReleased()
    {
        Released = true;
        _reserved = 0;
    }

    /// <summary>The slot a forward pass writes <paramref name="position"/>'s rows to: reserved, and not in a shared prefix block.</summary>
    public int WritableSlot(int position) => Slot(position, 1, writable: true);

    public void Write(int layer, int position, ReadOnlySpan<float> row)
    {
        if (row.Length != RowSize) throw new ArgumentException($"latent row of {row.Length} values, expected {RowSize}", nameof(row));
        _memory.Write(layer, Slot(position, 1, writable: true), row);
    }

    public void Read(int layer, int position, Span<float> row) => _memory.Read(layer, Slot(position, 1, writable: false), 1, row[..RowSize]);

    public void ReadRows(int layer, int start, int count, Span<float> rows)
    {
        CheckRun(start, count, rows.Length, RowSize, "values");
        if (count == 0) return;
        Slot(start, count, writable: false);
        _memory.ReadSequence(layer, BlockTable, start, count, rows);
    }

    public void Advance(int count)
    {
        if (count < 0 || Length + count > _reserved) throw new InvalidOperationException($"advancing to {Length + count} positions past the reserved {_reserved}");
        Length += count;
    }

    /// <summary>Copies rows [start, start + count) of one layer as stored (row-major, little-endian) into <paramref name="destination"/>.</summary>
    public void ReadRaw(int layer, int start, int count, Span<byte> destination)
    {
        CheckRun(start, count, destination.Length, BytesPerRow, "bytes");
        while (count > 0)
        {
            int run = Math.Min(count, _blockSize - start % _blockSize);
            _memory.ReadRaw(layer, Slot(start, run, writable: false), run, destination);
            destination = destination[(run * BytesPerRow)..];
            start += run;
            count -= run;
        }
    }

    /// <summary>Stores rows [start, start + count) of one layer from their stored bytes (reserved positions, not shared ones).</summary>
    public void WriteRaw(int layer, int start, int count, ReadOnlySpan<byte> source)
    {
        CheckRun(start, count, source.Length, BytesPerRow, "bytes");
        while (count > 0)
        {
            int run = Math.Min(count, _blockSize - start % _blockSize);
            int bytes = run * BytesPerRow;
            _memory.WriteRaw(layer, Slot(start, run, writable: true), run, source[..bytes]);
            source = source[bytes..];
            start += run;
            count -= run;
        }
    }

    private static void CheckRun(int start, int count, int length, int perRow, string unit)
    {
        if (start < 0 || count < 0) throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) are not a range");
        if (length < (long)count * perRow) throw new ArgumentException($"{length} {unit} for {count} rows of {perRow} {unit}");
    }

    /// <summary>The slot of <paramref name="position"/> after checking that positions [position, position + count) are reserved (and writable).</summary>
    private int Slot(int position, int count, bool writable)
    {
        if ((uint)position > (uint)(_reserved - count) || count > _reserved)
            throw new ArgumentOutOfRangeException(nameof(position), Released
                ? "the latent cache was released"
                : $"positions [{position}, {position + count}) not reserved (reserved {_reserved})");
        if (writable && position < _readOnly)
            throw new InvalidOperationException($"position {position} lies in a shared prefix block (read-only below {_readOnly})");
        int block = position / _blockSize;
        return _blocks[block] * _blockSize + position - block * _blockSize;
    }
}
