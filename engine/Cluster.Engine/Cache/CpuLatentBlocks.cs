using System.Runtime.InteropServices;
using Cluster.Engine.Backend;

namespace Cluster.Engine.Cache;

/// <summary>
/// The CPU backend's latent block memory: one native allocation per block, made on the block's first use (so a
/// large budget costs nothing until sequences fill it) or all at once by <see cref="Reserve"/>. Outside the GC's heap
/// on purpose: gigabytes of long-lived blocks on the large object heap would size its collection budget, letting as
/// much short-lived garbage pile up before a full collection. Freed when the memory is collected (the GC is told how
/// much it holds, so it does not wait too long).
/// </summary>
public sealed unsafe class CpuLatentBlocks : ILatentBlocks
{
    private readonly nint[] _blocks;
    private readonly int _layerBytes, _blockBytes;

    public CpuLatentBlocks(int blocks, int blockSize, int layers, int rowSize, LatentFormat format)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        Blocks = blocks;
        BlockSize = blockSize;
        Layers = layers;
        RowSize = rowSize;
        Format = format;
        BytesPerRow = rowSize * format.BytesPerValue();
        long blockBytes = (long)layers * blockSize * BytesPerRow;
        if (blockBytes > Array.MaxLength) throw new ArgumentException($"a latent cache block of {blockSize} tokens takes {blockBytes} bytes, more than one array holds");
        _layerBytes = blockSize * BytesPerRow;
        _blockBytes = (int)blockBytes;
        _blocks = new nint[blocks];
    }

    ~CpuLatentBlocks()
    {
        foreach (nint block in _blocks)
            if (block != 0)
            {
                NativeMemory.Free((void*)block);
                GC.RemoveMemoryPressure(_blockBytes);
            }
    }

    public int Blocks { get; }
    public int BlockSize { get; }
    public int Layers { get; }
    public int RowSize { get; }
    public LatentFormat Format { get; }
    public int BytesPerRow { get; }

    public void Write(int layer, int slot, ReadOnlySpan<float> row)
    {
        if (row.Length != RowSize) throw new ArgumentException($"latent row of {row.Length} values, expected {RowSize}", nameof(row));
        LatentRows.Store(Format, row, Stored(layer, slot, 1));
    }

    public void Read(int layer, int slot, int count, Span<float> rows)
    {
        if (rows.Length < (long)count * RowSize) throw new ArgumentException($"{rows.Length} values for {count} rows of {RowSize}", nameof(rows));
        LatentRows.Load(Format, Stored(layer, slot, count), rows[..(count * RowSize)]);
    }

    public void ReadRaw(int layer, int slot, int count, Span<byte> destination) => Stored(layer, slot, count).CopyTo(destination);

    public void WriteRaw(int layer, int slot, int count, ReadOnlySpan<byte> source)
    {
        Span<byte> stored = Stored(layer, slot, count);
        if (source.Length < stored.Length) throw new ArgumentException($"{source.Length} bytes for {count} rows of {BytesPerRow} bytes", nameof(source));
        source[..stored.Length].CopyTo(stored);
    }

    /// <summary>The stored bytes of rows [slot, slot + count) of one layer, all within one block.</summary>
    private Span<byte> Stored(int layer, int slot, int count)
    {
        if ((uint)layer >= (uint)Layers) throw new ArgumentOutOfRangeException(nameof(layer), $"layer {layer} of {Layers}");
        int block = slot / BlockSize, offset = slot - block * BlockSize;
        if (slot < 0 || (uint)block >= (uint)Blocks || count < 0 || offset + count > BlockSize)
            throw new ArgumentOutOfRangeException(nameof(slot), $"rows [{slot}, {slot + count}) do not lie within one of {Blocks} blocks of {BlockSize}");
        nint memory = Volatile.Read(ref _blocks[block]);
        if (memory == 0) memory = Allocate(block);
        return new Span<byte>((byte*)memory + layer * _layerBytes + offset * BytesPerRow, count * BytesPerRow);
    }

    /// <summary>Allocates every block not yet in use; blocks already holding rows are left as they are.</summary>
    public void Reserve() =>
        // Writing every page makes it resident (a fresh array's pages are the kernel's shared zero page until touched).
        Parallel.For(0, Blocks, block =>
        {
            if (Volatile.Read(ref _blocks[block]) == 0) new Span<byte>((void*)Allocate(block), _blockBytes).Clear();
        });

    private nint Allocate(int block)
    {
        var memory = (nint)NativeMemory.AllocZeroed((nuint)_blockBytes);
        nint won = Interlocked.CompareExchange(ref _blocks[block], memory, 0);
        if (won != 0)
        {
            NativeMemory.Free((void*)memory);
            return won;
        }
        GC.AddMemoryPressure(_blockBytes);
        return memory;
    }
}
