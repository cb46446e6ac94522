using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Cache;

/// <summary>Converts latent cache rows between float and their stored bytes (little-endian BF16 or F32).</summary>
internal static class LatentRows
{
    /// <summary>Stores <paramref name="row"/> into <paramref name="stored"/>, rounding to nearest even for BF16.</summary>
    public static void Store(LatentFormat format, ReadOnlySpan<float> row, Span<byte> stored)
    {
        if (format == LatentFormat.F32)
        {
            MemoryMarshal.AsBytes(row).CopyTo(stored);
            return;
        }
        Span<ushort> bits = MemoryMarshal.Cast<byte, ushort>(stored[..(row.Length * sizeof(ushort))]);
        for (int i = 0; i < row.Length; i++) bits[i] = NumberFormats.FloatToBF16(row[i]);
    }

    /// <summary>Loads stored bytes as floats; BF16 widens exactly (the value's bits move to the high half).</summary>
    public static void Load(LatentFormat format, ReadOnlySpan<byte> stored, Span<float> row)
    {
        if (format == LatentFormat.F32)
        {
            MemoryMarshal.Cast<byte, float>(stored[..(row.Length * sizeof(float))]).CopyTo(row);
            return;
        }
        ReadOnlySpan<ushort> bits = MemoryMarshal.Cast<byte, ushort>(stored[..(row.Length * sizeof(ushort))]);
        Span<uint> words = MemoryMarshal.Cast<float, uint>(row);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= bits.Length - Vector256<ushort>.Count; i += Vector256<ushort>.Count)
            {
                var (low, high) = Vector256.Widen(Vector256.Create(bits.Slice(i, Vector256<ushort>.Count)));
                Vector256.ShiftLeft(low, 16).CopyTo(words.Slice(i));
                Vector256.ShiftLeft(high, 16).CopyTo(words.Slice(i + Vector256<uint>.Count));
            }
        }
        for (; i < bits.Length; i++) words[i] = (uint)bits[i] << 16;
    }
}
