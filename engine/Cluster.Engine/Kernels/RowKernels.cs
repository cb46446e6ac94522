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
    private static readonly bool s_avx512 = Avx512F.IsSupported;
    /// <summary>2^120 moves E4M3's exponent bias (7) to float32's (127).</summary>
    private static readonly float Fp8Rebias = MathF.ScaleB(1f, 120);

    /// <summary>
    /// FP8 dot products take x pre-multiplied by 2^64 (see <see cref="ScaleForFp8"/>): the undecoded weights are
    /// value·2^-120, and their products with unscaled activations would often be float32 subnormals, which cost
    /// the FMA units several times their normal speed.
    /// </summary>
    public static readonly float Fp8InputScale = MathF.ScaleB(1f, 64);
    private static readonly float Fp8VectorRescale = MathF.ScaleB(1f, 120 - 64);
    private static readonly float Fp8TailRescale = MathF.ScaleB(1f, -64);
    private const int Fp8Mask = unchecked((int)0x87F0_0000);

    /// <summary>x · row. For FP8 weights x must be scaled by <see cref="Fp8InputScale"/>.</summary>
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
                return DotFp8Row(p, x, n, w.RowScales(row));
        }
    }

    /// <summary>
    /// A whole FP8 row: each full 128-column block's vector partial sum is scaled into one vector total, so the
    /// horizontal sum happens once per row rather than once per block; a partial last block goes through
    /// <see cref="DotFp8"/>.
    /// </summary>
    private static float DotFp8Row(byte* w, float* x, int n, float* scales)
    {
        int c = 0, b = 0;
        float total = 0;
        if (s_avx512)
        {
            Vector512<float> sum = default;
            for (; c + Block <= n; c += Block, b++)
            {
                Vector512<float> a0 = default, a1 = default;
                for (int i = c; i < c + Block; i += 32)
                {
                    a0 = Avx512F.FusedMultiplyAdd(Fp8x16(w + i), Avx512F.LoadVector512(x + i), a0);
                    a1 = Avx512F.FusedMultiplyAdd(Fp8x16(w + i + 16), Avx512F.LoadVector512(x + i + 16), a1);
                }
                sum = Avx512F.FusedMultiplyAdd(a0 + a1, Vector512.Create(scales[b]), sum);
            }
            total = Vector512.Sum(sum) * Fp8VectorRescale;
        }
        for (; c < n; c += Block, b++) total += DotFp8(w + c, x + c, Math.Min(Block, n - c)) * scales[b];
        return total;
    }

    /// <summary>x·2^64 for FP8 dot products (see <see cref="Fp8InputScale"/>).</summary>
    public static void ScaleForFp8(ReadOnlySpan<float> x, Span<float> scaled) => TensorPrimitives.Multiply(x, Fp8InputScale, scaled);

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
        if (s_avx512 && n >= 16)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= n - 64; i += 64)
            {
                a0 = Avx512F.FusedMultiplyAdd(BF16x16(w + i), Avx512F.LoadVector512(x + i), a0);
                a1 = Avx512F.FusedMultiplyAdd(BF16x16(w + i + 16), Avx512F.LoadVector512(x + i + 16), a1);
                a2 = Avx512F.FusedMultiplyAdd(BF16x16(w + i + 32), Avx512F.LoadVector512(x + i + 32), a2);
                a3 = Avx512F.FusedMultiplyAdd(BF16x16(w + i + 48), Avx512F.LoadVector512(x + i + 48), a3);
            }
            for (; i <= n - 16; i += 16) a0 = Avx512F.FusedMultiplyAdd(BF16x16(w + i), Avx512F.LoadVector512(x + i), a0);
            sum = Vector512.Sum((a0 + a1) + (a2 + a3));
        }
        else if (s_avx2 && n >= 8)
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

    /// <summary>One FP8 block's dot product with x·2^64, before the block scale; returns the unscaled dot product.</summary>
    private static float DotFp8(byte* w, float* x, int n)
    {
        int i = 0;
        float sum = 0, tail = 0;
        if (s_avx512 && n >= 16)
        {
            Vector512<float> a0 = default, a1 = default;
            for (; i <= n - 32; i += 32)
            {
                a0 = Avx512F.FusedMultiplyAdd(Fp8x16(w + i), Avx512F.LoadVector512(x + i), a0);
                a1 = Avx512F.FusedMultiplyAdd(Fp8x16(w + i + 16), Avx512F.LoadVector512(x + i + 16), a1);
            }
            for (; i <= n - 16; i += 16) a0 = Avx512F.FusedMultiplyAdd(Fp8x16(w + i), Avx512F.LoadVector512(x + i), a0);
            sum = Vector512.Sum(a0 + a1) * Fp8VectorRescale;
        }
        else if (s_avx2 && n >= 8)
        {
            Vector256<float> a0 = default, a1 = default;
            for (; i <= n - 16; i += 16)
            {
                a0 = Fma.MultiplyAdd(Fp8x8(w + i), Avx.LoadVector256(x + i), a0);
                a1 = Fma.MultiplyAdd(Fp8x8(w + i + 8), Avx.LoadVector256(x + i + 8), a1);
            }
            for (; i <= n - 8; i += 8) a0 = Fma.MultiplyAdd(Fp8x8(w + i), Avx.LoadVector256(x + i), a0);
            sum = Vector256.Sum(a0 + a1) * Fp8VectorRescale;
        }
        float[] table = NumberFormats.Fp8E4M3ToFloat;
        for (; i < n; i++) tail += table[w[i]] * x[i];
        return sum + tail * Fp8TailRescale;
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
        if (s_avx512)
            for (; i <= n - 16; i += 16) Avx512F.Store(dst + i, BF16x16(w + i));
        if (s_avx2)
            for (; i <= n - 8; i += 8) Avx.Store(dst + i, BF16x8(w + i));
        for (; i < n; i++) dst[i] = NumberFormats.BF16ToFloat(w[i]);
    }

    private static void DecodeFp8(byte* w, float* dst, int n, float scale)
    {
        int i = 0;
        if (s_avx512)
        {
            var s = Vector512.Create(scale) * Vector512.Create(Fp8Rebias);
            for (; i <= n - 16; i += 16) Avx512F.Store(dst + i, Fp8x16(w + i) * s);
        }
        if (s_avx2)
        {
            var s = Vector256.Create(scale) * Vector256.Create(Fp8Rebias);
            for (; i <= n - 8; i += 8) Avx.Store(dst + i, Fp8x8(w + i) * s);
        }
        float[] table = NumberFormats.Fp8E4M3ToFloat;
        for (; i < n; i++) dst[i] = table[w[i]] * scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> BF16x8(ushort* p) =>
        Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> BF16x16(ushort* p) =>
        Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Avx.LoadVector256(p)), 16).AsSingle();

    /// <summary>
    /// E4M3 to float32 times 2^-120, without a table: sign-extending the byte and shifting it left by 20 puts its
    /// sign at bit 31 and its 7 magnitude bits at float32's exponent/mantissa position (subnormals included, as
    /// float32 subnormals line up); the mask clears the sign copies in between. Callers multiply sums by 2^120.
    /// E4M3's NaN code decodes as a finite value; DeepSeek's quantiser never produces it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Fp8x16(byte* p) =>
        (Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128((sbyte*)p)), 20) & Vector512.Create(Fp8Mask)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Fp8x8(byte* p) =>
        (Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32((sbyte*)p), 20) & Vector256.Create(Fp8Mask)).AsSingle();
}
