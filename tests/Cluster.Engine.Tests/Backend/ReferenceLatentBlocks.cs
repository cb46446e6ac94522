using System.Runtime.InteropServices;
using Cluster.Engine.Backend;
using Cluster.Engine.Cache;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Backend;

/// <summary>
/// Latent block memory as one float array per layer indexed by slot, each value rounded to BF16 when that is
/// the format: the stored values the CPU memory holds, kept without its byte layout.
/// </summary>
internal sealed class ReferenceLatentBlocks(int blocks, int blockSize, int layers, int rowSize, LatentFormat format) : ILatentBlocks
{
    private readonly float[][] _layers = Enumerable.Range(0, layers).Select(_ => new float[blocks * blockSize * rowSize]).ToArray();

    public int Blocks => blocks;
    public int BlockSize => blockSize;
    public int Layers => layers;
    public int RowSize => rowSize;
    public LatentFormat Format => format;
    public int BytesPerRow => rowSize * format.BytesPerValue();

    public void Write(int layer, int slot, ReadOnlySpan<float> row)
    {
        Span<float> stored = _layers[layer].AsSpan(slot * rowSize, rowSize);
        for (int i = 0; i < rowSize; i++) stored[i] = format == LatentFormat.BF16 ? NumberFormats.BF16ToFloat(NumberFormats.FloatToBF16(row[i])) : row[i];
    }

    /// <summary>Its arrays are allocated whole, so there is nothing left to reserve.</summary>
    public void Reserve() { }

    public void Read(int layer, int slot, int count, Span<float> rows) => _layers[layer].AsSpan(slot * rowSize, count * rowSize).CopyTo(rows);

    public void ReadRaw(int layer, int slot, int count, Span<byte> destination)
    {
        ReadOnlySpan<float> stored = _layers[layer].AsSpan(slot * rowSize, count * rowSize);
        if (format == LatentFormat.F32) MemoryMarshal.AsBytes(stored).CopyTo(destination);
        else
        {
            Span<ushort> bits = MemoryMarshal.Cast<byte, ushort>(destination[..(stored.Length * 2)]);
            for (int i = 0; i < stored.Length; i++) bits[i] = NumberFormats.FloatToBF16(stored[i]);
        }
    }

    public void WriteRaw(int layer, int slot, int count, ReadOnlySpan<byte> source)
    {
        Span<float> stored = _layers[layer].AsSpan(slot * rowSize, count * rowSize);
        if (format == LatentFormat.F32) MemoryMarshal.Cast<byte, float>(source[..(stored.Length * 4)]).CopyTo(stored);
        else
        {
            ReadOnlySpan<ushort> bits = MemoryMarshal.Cast<byte, ushort>(source[..(stored.Length * 2)]);
            for (int i = 0; i < stored.Length; i++) stored[i] = NumberFormats.BF16ToFloat(bits[i]);
        }
    }
}
