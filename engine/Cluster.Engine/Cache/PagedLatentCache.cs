namespace Cluster.Engine.Cache;

/// <summary>
/// One sequence's latent cache over blocks of a <see cref="LatentCacheManager"/>: a block table, the first
/// CachedPrefix positions possibly shared with other sequences (read-only), the rest its own.
/// </summary>
/// <remarks>
/// Within a block the rows are laid out [layer][position][row], so one layer's rows of a block are one
/// contiguous run. Rows of one sequence may be read from several threads at once (attention over heads);
/// positions are written by the thread running the sequence's forward pass.
/// </remarks>
public sealed class PagedLatentCache : ILatentCache
{
    private readonly int[] _blocks;
    private readonly byte[][] _memory;
    private readonly int _blockSize, _layerBytes;
    private int _allocated, _reserved, _readOnly;

    internal PagedLatentCache(LatentCacheManager manager, int maxLength, ReadOnlySpan<int> shared, byte[][] sharedMemory)
    {
        Manager = manager;
        MaxLength = maxLength;
        RowSize = manager.RowSize;
        Format = manager.Format;
        BytesPerRow = RowSize * Format.BytesPerValue();
        _blockSize = manager.BlockSize;
        _layerBytes = _blockSize * BytesPerRow;
        _blocks = new int[manager.BlocksFor(maxLength)];
        _memory = new byte[_blocks.Length][];
        shared.CopyTo(_blocks);
        sharedMemory.AsSpan(0, shared.Length).CopyTo(_memory);
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

    internal void Attach(int block, byte[] memory)
    {
        _blocks[_allocated] = block;
        _memory[_allocated++] = memory;
    }

    /// <summary>Positions below <paramref name="positions"/> are published: other sequences may share them from now on.</summary>
    internal void Seal(int positions) => _readOnly = Math.Max(_readOnly, positions);

    internal void MarkReleased()
    {
        Released = true;
        _reserved = 0;
    }

    public void Write(int layer, int position, ReadOnlySpan<float> row)
    {
        if (row.Length != RowSize) throw new ArgumentException($"latent row of {row.Length} values, expected {RowSize}", nameof(row));
        LatentRows.Store(Format, row, Stored(layer, position, 1, writable: true));
    }

    public void Read(int layer, int position, Span<float> row) =>
        LatentRows.Load(Format, Stored(layer, position, 1, writable: false), row[..RowSize]);

    public void ReadRows(int layer, int start, int count, Span<float> rows)
    {
        CheckRun(start, count, rows.Length, RowSize, "values");
        while (count > 0)
        {
            int run = Math.Min(count, _blockSize - start % _blockSize);
            LatentRows.Load(Format, Stored(layer, start, run, writable: false), rows[..(run * RowSize)]);
            rows = rows[(run * RowSize)..];
            start += run;
            count -= run;
        }
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
            int bytes = run * BytesPerRow;
            Stored(layer, start, run, writable: false).CopyTo(destination);
            destination = destination[bytes..];
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
            source[..bytes].CopyTo(Stored(layer, start, run, writable: true));
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

    /// <summary>The stored bytes of rows [position, position + count) of one layer, all within one block.</summary>
    private Span<byte> Stored(int layer, int position, int count, bool writable)
    {
        if ((uint)position > (uint)(_reserved - count) || count > _reserved)
            throw new ArgumentOutOfRangeException(nameof(position), Released
                ? "the latent cache was released"
                : $"positions [{position}, {position + count}) not reserved (reserved {_reserved})");
        if ((uint)layer >= (uint)Manager.Layers) throw new ArgumentOutOfRangeException(nameof(layer), $"layer {layer} of {Manager.Layers}");
        if (writable && position < _readOnly)
            throw new InvalidOperationException($"position {position} lies in a shared prefix block (read-only below {_readOnly})");
        int block = position / _blockSize;
        int offset = layer * _layerBytes + (position - block * _blockSize) * BytesPerRow;
        return _memory[block].AsSpan(offset, count * BytesPerRow);
    }
}
