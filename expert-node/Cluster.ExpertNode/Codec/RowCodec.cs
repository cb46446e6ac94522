using System.Runtime.InteropServices;
using Cluster.Engine.Tensors;
using Cluster.Protos.V1;

namespace Cluster.ExpertNode.Codec;

/// <summary>
/// Token rows on the wire. Dispatch sends BF16, or FP8 E4M3 with one F32 scale per 128 columns of a row (the scale
/// maps the block's largest magnitude to 448, as DeepEP quantizes); combine returns F32.
/// </summary>
public static class RowCodec
{
    public const int Fp8Block = 128;

    public static int ScaleBlocks(int hidden) => (hidden + Fp8Block - 1) / Fp8Block;

    /// <summary>Bytes of <paramref name="values"/> elements in <paramref name="dtype"/> (scales not included).</summary>
    public static int Bytes(TensorDType dtype, int values) => dtype switch
    {
        TensorDType.Bf16 => values * 2,
        TensorDType.Fp8E4M3 => values,
        TensorDType.F32 => values * 4,
        _ => throw new NotSupportedException($"row dtype {dtype} is not supported (BF16, FP8_E4M3 or F32)"),
    };

    public static void EncodeBf16(ReadOnlySpan<float> values, Span<byte> dst)
    {
        Span<ushort> bits = MemoryMarshal.Cast<byte, ushort>(dst[..(values.Length * 2)]);
        for (int i = 0; i < values.Length; i++) bits[i] = NumberFormats.FloatToBF16(values[i]);
    }

    public static void DecodeBf16(ReadOnlySpan<byte> src, Span<float> dst)
    {
        ReadOnlySpan<ushort> bits = MemoryMarshal.Cast<byte, ushort>(src[..(dst.Length * 2)]);
        for (int i = 0; i < dst.Length; i++) dst[i] = NumberFormats.BF16ToFloat(bits[i]);
    }

    /// <summary>Encodes one row: <paramref name="scales"/> gets one entry per 128-column block.</summary>
    public static void EncodeFp8Row(ReadOnlySpan<float> row, Span<byte> dst, Span<float> scales)
    {
        for (int b = 0, start = 0; start < row.Length; b++, start += Fp8Block)
        {
            ReadOnlySpan<float> block = row.Slice(start, Math.Min(Fp8Block, row.Length - start));
            float amax = 0;
            foreach (float v in block) amax = Math.Max(amax, Math.Abs(v));
            // An all-zero block encodes as zeros under any scale; 1 keeps the decode finite.
            float scale = amax > 0 && float.IsFinite(amax) ? amax / NumberFormats.Fp8E4M3Max : 1f;
            scales[b] = scale;
            Span<byte> out8 = dst.Slice(start, block.Length);
            for (int i = 0; i < block.Length; i++) out8[i] = NumberFormats.FloatToFp8E4M3(block[i] / scale);
        }
    }

    public static void DecodeFp8Row(ReadOnlySpan<byte> src, ReadOnlySpan<float> scales, Span<float> row)
    {
        float[] table = NumberFormats.Fp8E4M3ToFloat;
        for (int b = 0, start = 0; start < row.Length; b++, start += Fp8Block)
        {
            int len = Math.Min(Fp8Block, row.Length - start);
            float scale = scales[b];
            for (int i = start; i < start + len; i++) row[i] = table[src[i]] * scale;
        }
    }

    /// <summary>Decodes <paramref name="rows"/> rows of dispatched activations into float32.</summary>
    public static void DecodeRows(TensorDType dtype, ReadOnlySpan<byte> data, ReadOnlySpan<byte> scaleBytes, int rows, int hidden, Span<float> dst)
    {
        switch (dtype)
        {
            case TensorDType.Bf16:
                DecodeBf16(data, dst[..(rows * hidden)]);
                break;
            case TensorDType.Fp8E4M3:
                int blocks = ScaleBlocks(hidden);
                ReadOnlySpan<float> scales = MemoryMarshal.Cast<byte, float>(scaleBytes);
                for (int r = 0; r < rows; r++)
                    DecodeFp8Row(data.Slice(r * hidden, hidden), scales.Slice(r * blocks, blocks), dst.Slice(r * hidden, hidden));
                break;
            case TensorDType.F32:
                MemoryMarshal.Cast<byte, float>(data)[..(rows * hidden)].CopyTo(dst);
                break;
            default:
                throw new NotSupportedException($"row dtype {dtype} is not supported (BF16, FP8_E4M3 or F32)");
        }
    }
}
