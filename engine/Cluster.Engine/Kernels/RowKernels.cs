using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Kernels;

/// <summary>
/// One weight row at a time, in its stored dtype: the dot product with a float32 vector (batch 1, where the
/// weight is read exactly once and the kernel is bound by memory bandwidth) and decoding to float32 (batches,
/// where a decoded row is reused for every token). AVX2+FMA paths with a scalar fallback.
/// </summary>
public static unsafe class RowKernels
{
    private const int Block = Weight.Fp8Block;
    private static readonly bool s_avx2 = Avx2.IsSupported && Fma.IsSupported;
    /// <summary>2^120 moves E4M3's exponent bias (7) to float32's (127).</summary>
    private const float Fp8Rebias = 1.329228e36f;

    public static float Dot(in WeightView w, int row, float* x)
    {
        byte* p = w.Row(row);
        int n = w.Cols;
        switch (w.Type)
        {
            case DType.F32: return TensorPrimitives.Dot(new ReadOnlySpan<float>(p, n), new ReadOnlySpan<float>(x, n));
            case DType.BF16: return DotBF16((ushort*)p, x, n);
            case DType.F16: return DotF16((Half*)p, x, n);
            default:
                float* scales = w.RowScales(row);
                float total = 0;
                for (int c = 0, b = 0; c < n; c += Block, b++)
                    total += DotFp8(p + c, x + c, Math.Min(Block, n - c)) * scales[b];
                return total;
        }
    }

    /// <summary>Decodes columns [0, Cols) of <paramref name="row"/> to float32, block scales applied.</summary>
    public static void Decode(in WeightView w, int row, float* dst)
    {
        byte* p = w.Row(row);
        int n = w.Cols;
        switch (w.Type)
        {
            case DType.F32: Buffer.MemoryCopy(p, dst, n * 4L, n * 4L); break;
            case DType.BF16: DecodeBF16((ushort*)p, dst, n); break;
            case DType.F16: TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(p, n), new Span<float>(dst, n)); break;
            default:
                float* scales = w.RowScales(row);
                for (int c = 0, b = 0; c < n; c += Block, b++)
                    DecodeFp8(p + c, dst + c, Math.Min(Block, n - c), scales[b]);
                break;
        }
    }

    private static float DotBF16(ushort* w, float* x, int n)
    {
        int i = 0;
        float sum = 0;
        if (s_avx2 && n >= 8)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= n - 32; i += 32)
            {
                a0 = Fma.MultiplyAdd(BF16x8(w + i), Avx.LoadVector256(x + i), a0);
                a1 = Fma.MultiplyAdd(BF16x8(w + i + 8), Avx.LoadVector256(x + i + 8), a1);
                a2 = Fma.MultiplyAdd(BF16x8(w + i + 16), Avx.LoadVector256(x + i + 16), a2);
                a3 = Fma.MultiplyAdd(BF16x8(w + i + 24), Avx.LoadVector256(x + i + 24), a3);
            }
            for (; i <= n - 8; i += 8) a0 = Fma.MultiplyAdd(BF16x8(w + i), Avx.LoadVector256(x + i), a0);
            sum = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        for (; i < n; i++) sum += NumberFormats.BF16ToFloat(w[i]) * x[i];
        return sum;
    }

    private static float DotFp8(byte* w, float* x, int n)
    {
        int i = 0;
        float sum = 0;
        if (s_avx2 && n >= 8)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= n - 32; i += 32)
            {
                a0 = Fma.MultiplyAdd(Fp8x8(w + i), Avx.LoadVector256(x + i), a0);
                a1 = Fma.MultiplyAdd(Fp8x8(w + i + 8), Avx.LoadVector256(x + i + 8), a1);
                a2 = Fma.MultiplyAdd(Fp8x8(w + i + 16), Avx.LoadVector256(x + i + 16), a2);
                a3 = Fma.MultiplyAdd(Fp8x8(w + i + 24), Avx.LoadVector256(x + i + 24), a3);
            }
            for (; i <= n - 8; i += 8) a0 = Fma.MultiplyAdd(Fp8x8(w + i), Avx.LoadVector256(x + i), a0);
            sum = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        float[] table = NumberFormats.Fp8E4M3ToFloat;
        for (; i < n; i++) sum += table[w[i]] * x[i];
        return sum;
    }

    private static float DotF16(Half* w, float* x, int n)
    {
        // No F16C intrinsics in .NET: decode a block at a time with TensorPrimitives' vectorised conversion.
        float* tmp = stackalloc float[Block];
        float sum = 0;
        for (int c = 0; c < n; c += Block)
        {
            int len = Math.Min(Block, n - c);
            TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(w + c, len), new Span<float>(tmp, len));
            sum += TensorPrimitives.Dot(new ReadOnlySpan<float>(tmp, len), new ReadOnlySpan<float>(x + c, len));
        }
        return sum;
    }

    private static void DecodeBF16(ushort* w, float* dst, int n)
    {
        int i = 0;
        if (s_avx2)
            for (; i <= n - 8; i += 8) Avx.Store(dst + i, BF16x8(w + i));
        for (; i < n; i++) dst[i] = NumberFormats.BF16ToFloat(w[i]);
    }

    private static void DecodeFp8(byte* w, float* dst, int n, float scale)
    {
        int i = 0;
        if (s_avx2)
        {
            var s = Vector256.Create(scale);
            for (; i <= n - 8; i += 8) Avx.Store(dst + i, Fp8x8(w + i) * s);
        }
        float[] table = NumberFormats.Fp8E4M3ToFloat;
        for (; i < n; i++) dst[i] = table[w[i]] * scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> BF16x8(ushort* p) =>
        Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();

    /// <summary>
    /// E4M3 to float32 without a table: the 7 magnitude bits shifted into float32's exponent/mantissa position
    /// give the value times 2^-120 (subnormals included, since float32 subnormals line up), then rebias and sign.
    /// E4M3's NaN code (0x7F) decodes as 480; DeepSeek's quantiser never produces it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Fp8x8(byte* p)
    {
        Vector256<int> v = Avx2.ConvertToVector256Int32(p);
        Vector256<int> magnitude = Avx2.ShiftLeftLogical(v & Vector256.Create(0x7F), 20);
        Vector256<int> sign = Avx2.ShiftLeftLogical(v & Vector256.Create(0x80), 24);
        return ((magnitude.AsSingle() * Vector256.Create(Fp8Rebias)).AsInt32() | sign).AsSingle();
    }
}
