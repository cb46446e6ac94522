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
    /// x · rows [row, row + 4) into y[0..4): the bits of four <see cref="Dot"/> calls (each row accumulates exactly as
    /// there), with every load of x shared by the four rows. At DeepSeek-V3's hidden size x is 28 KB (FP8: 28 bytes
    /// of x per 7 of weight), which one row at a time reads from L2 once per row and so caps the stream below the
    /// memory's bandwidth.
    /// </summary>
    public static void Dot4(in WeightView w, int row, float* x, float* y)
    {
        int n = w.Cols;
        if (s_avx512 && n >= 16 && w.Type == DType.BF16)
        {
            DotBF16x4((ushort*)w.Row(row), n, x, y);
            return;
        }
        if (s_avx512 && w.Type == DType.F8E4M3)
        {
            DotFp8Rowx4(w.Row(row), n, x, w.RowScales(row), w.RowScales(row + 1), w.RowScales(row + 2), w.RowScales(row + 3), y);
            return;
        }
        for (int t = 0; t < 4; t++) y[t] = Dot(w, row + t, x);
    }

    /// <summary>
    /// One row against the four x rows x0..x3 (the same pointer may repeat) into y[0..4): each weight vector is read
    /// and decoded once for all of them, each product in the order of <see cref="Dot"/>, so a token's bits do not
    /// depend on the batch it is in (up to four). Small decode batches then cost about what one token does.
    /// </summary>
    public static void DotTokens(in WeightView w, int row, float* x0, float* x1, float* x2, float* x3, float* y)
    {
        int n = w.Cols;
        if (s_avx512 && n >= 16 && w.Type == DType.BF16) DotBF16Tokens((ushort*)w.Row(row), n, x0, x1, x2, x3, y);
        else if (s_avx512 && w.Type == DType.F8E4M3) DotFp8RowTokens(w.Row(row), n, x0, x1, x2, x3, w.RowScales(row), y);
        else
        {
            y[0] = Dot(w, row, x0); y[1] = Dot(w, row, x1); y[2] = Dot(w, row, x2); y[3] = Dot(w, row, x3);
        }
    }

    private static void DotBF16Tokens(ushort* w, int n, float* x0, float* x1, float* x2, float* x3, float* y)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        int i = 0;
        for (; i <= n - 64; i += 64)
        {
            Vector512<float> v0 = BF16x16(w + i), v1 = BF16x16(w + i + 16), v2 = BF16x16(w + i + 32), v3 = BF16x16(w + i + 48);
            a00 = Avx512F.FusedMultiplyAdd(v0, Avx512F.LoadVector512(x0 + i), a00); a01 = Avx512F.FusedMultiplyAdd(v1, Avx512F.LoadVector512(x0 + i + 16), a01);
            a02 = Avx512F.FusedMultiplyAdd(v2, Avx512F.LoadVector512(x0 + i + 32), a02); a03 = Avx512F.FusedMultiplyAdd(v3, Avx512F.LoadVector512(x0 + i + 48), a03);
            a10 = Avx512F.FusedMultiplyAdd(v0, Avx512F.LoadVector512(x1 + i), a10); a11 = Avx512F.FusedMultiplyAdd(v1, Avx512F.LoadVector512(x1 + i + 16), a11);
            a12 = Avx512F.FusedMultiplyAdd(v2, Avx512F.LoadVector512(x1 + i + 32), a12); a13 = Avx512F.FusedMultiplyAdd(v3, Avx512F.LoadVector512(x1 + i + 48), a13);
            a20 = Avx512F.FusedMultiplyAdd(v0, Avx512F.LoadVector512(x2 + i), a20); a21 = Avx512F.FusedMultiplyAdd(v1, Avx512F.LoadVector512(x2 + i + 16), a21);
            a22 = Avx512F.FusedMultiplyAdd(v2, Avx512F.LoadVector512(x2 + i + 32), a22); a23 = Avx512F.FusedMultiplyAdd(v3, Avx512F.LoadVector512(x2 + i + 48), a23);
            a30 = Avx512F.FusedMultiplyAdd(v0, Avx512F.LoadVector512(x3 + i), a30); a31 = Avx512F.FusedMultiplyAdd(v1, Avx512F.LoadVector512(x3 + i + 16), a31);
            a32 = Avx512F.FusedMultiplyAdd(v2, Avx512F.LoadVector512(x3 + i + 32), a32); a33 = Avx512F.FusedMultiplyAdd(v3, Avx512F.LoadVector512(x3 + i + 48), a33);
        }
        for (; i <= n - 16; i += 16)
        {
            Vector512<float> v = BF16x16(w + i);
            a00 = Avx512F.FusedMultiplyAdd(v, Avx512F.LoadVector512(x0 + i), a00);
            a10 = Avx512F.FusedMultiplyAdd(v, Avx512F.LoadVector512(x1 + i), a10);
            a20 = Avx512F.FusedMultiplyAdd(v, Avx512F.LoadVector512(x2 + i), a20);
            a30 = Avx512F.FusedMultiplyAdd(v, Avx512F.LoadVector512(x3 + i), a30);
        }
        float s0 = Vector512.Sum((a00 + a01) + (a02 + a03)), s1 = Vector512.Sum((a10 + a11) + (a12 + a13));
        float s2 = Vector512.Sum((a20 + a21) + (a22 + a23)), s3 = Vector512.Sum((a30 + a31) + (a32 + a33));
        for (; i < n; i++)
        {
            float wi = NumberFormats.BF16ToFloat(w[i]);
            s0 += wi * x0[i]; s1 += wi * x1[i]; s2 += wi * x2[i]; s3 += wi * x3[i];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    private static void DotFp8RowTokens(byte* w, int n, float* x0, float* x1, float* x2, float* x3, float* scales, float* y)
    {
        Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
        int c = 0, b = 0;
        for (; c + Block <= n; c += Block, b++)
        {
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
            for (int i = c; i < c + Block; i += 32)
            {
                Vector512<float> v0 = Fp8x16(w + i), v1 = Fp8x16(w + i + 16);
                a00 = Avx512F.FusedMultiplyAdd(v0, Avx512F.LoadVector512(x0 + i), a00); a01 = Avx512F.FusedMultiplyAdd(v1, Avx512F.LoadVector512(x0 + i + 16), a01);
                a10 = Avx512F.FusedMultiplyAdd(v0, Avx512F.LoadVector512(x1 + i), a10); a11 = Avx512F.FusedMultiplyAdd(v1, Avx512F.LoadVector512(x1 + i + 16), a11);
                a20 = Avx512F.FusedMultiplyAdd(v0, Avx512F.LoadVector512(x2 + i), a20); a21 = Avx512F.FusedMultiplyAdd(v1, Avx512F.LoadVector512(x2 + i + 16), a21);
                a30 = Avx512F.FusedMultiplyAdd(v0, Avx512F.LoadVector512(x3 + i), a30); a31 = Avx512F.FusedMultiplyAdd(v1, Avx512F.LoadVector512(x3 + i + 16), a31);
            }
            Vector512<float> scale = Vector512.Create(scales[b]);
            t0 = Avx512F.FusedMultiplyAdd(a00 + a01, scale, t0); t1 = Avx512F.FusedMultiplyAdd(a10 + a11, scale, t1);
            t2 = Avx512F.FusedMultiplyAdd(a20 + a21, scale, t2); t3 = Avx512F.FusedMultiplyAdd(a30 + a31, scale, t3);
        }
        float s0 = Vector512.Sum(t0) * Fp8VectorRescale, s1 = Vector512.Sum(t1) * Fp8VectorRescale;
        float s2 = Vector512.Sum(t2) * Fp8VectorRescale, s3 = Vector512.Sum(t3) * Fp8VectorRescale;
        for (; c < n; c += Block, b++)
        {
            int len = Math.Min(Block, n - c);
            s0 += DotFp8(w + c, x0 + c, len) * scales[b]; s1 += DotFp8(w + c, x1 + c, len) * scales[b];
            s2 += DotFp8(w + c, x2 + c, len) * scales[b]; s3 += DotFp8(w + c, x3 + c, len) * scales[b];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    /// <summary>Four consecutive BF16 rows of length n (row-major, n apart) against x, each in <see cref="DotBF16"/>'s order.</summary>
    private static void DotBF16x4(ushort* w, int n, float* x, float* y)
    {
        ushort* w0 = w, w1 = w + n, w2 = w + 2L * n, w3 = w + 3L * n;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        int i = 0;
        for (; i <= n - 64; i += 64)
        {
            Vector512<float> x0 = Avx512F.LoadVector512(x + i), x1 = Avx512F.LoadVector512(x + i + 16);
            Vector512<float> x2 = Avx512F.LoadVector512(x + i + 32), x3 = Avx512F.LoadVector512(x + i + 48);
            a00 = Avx512F.FusedMultiplyAdd(BF16x16(w0 + i), x0, a00); a01 = Avx512F.FusedMultiplyAdd(BF16x16(w0 + i + 16), x1, a01);
            a02 = Avx512F.FusedMultiplyAdd(BF16x16(w0 + i + 32), x2, a02); a03 = Avx512F.FusedMultiplyAdd(BF16x16(w0 + i + 48), x3, a03);
            a10 = Avx512F.FusedMultiplyAdd(BF16x16(w1 + i), x0, a10); a11 = Avx512F.FusedMultiplyAdd(BF16x16(w1 + i + 16), x1, a11);
            a12 = Avx512F.FusedMultiplyAdd(BF16x16(w1 + i + 32), x2, a12); a13 = Avx512F.FusedMultiplyAdd(BF16x16(w1 + i + 48), x3, a13);
            a20 = Avx512F.FusedMultiplyAdd(BF16x16(w2 + i), x0, a20); a21 = Avx512F.FusedMultiplyAdd(BF16x16(w2 + i + 16), x1, a21);
            a22 = Avx512F.FusedMultiplyAdd(BF16x16(w2 + i + 32), x2, a22); a23 = Avx512F.FusedMultiplyAdd(BF16x16(w2 + i + 48), x3, a23);
            a30 = Avx512F.FusedMultiplyAdd(BF16x16(w3 + i), x0, a30); a31 = Avx512F.FusedMultiplyAdd(BF16x16(w3 + i + 16), x1, a31);
            a32 = Avx512F.FusedMultiplyAdd(BF16x16(w3 + i + 32), x2, a32); a33 = Avx512F.FusedMultiplyAdd(BF16x16(w3 + i + 48), x3, a33);
        }
        for (; i <= n - 16; i += 16)
        {
            Vector512<float> xv = Avx512F.LoadVector512(x + i);
            a00 = Avx512F.FusedMultiplyAdd(BF16x16(w0 + i), xv, a00);
            a10 = Avx512F.FusedMultiplyAdd(BF16x16(w1 + i), xv, a10);
            a20 = Avx512F.FusedMultiplyAdd(BF16x16(w2 + i), xv, a20);
            a30 = Avx512F.FusedMultiplyAdd(BF16x16(w3 + i), xv, a30);
        }
        float s0 = Vector512.Sum((a00 + a01) + (a02 + a03)), s1 = Vector512.Sum((a10 + a11) + (a12 + a13));
        float s2 = Vector512.Sum((a20 + a21) + (a22 + a23)), s3 = Vector512.Sum((a30 + a31) + (a32 + a33));
        for (; i < n; i++)
        {
            float xi = x[i];
            s0 += NumberFormats.BF16ToFloat(w0[i]) * xi; s1 += NumberFormats.BF16ToFloat(w1[i]) * xi;
            s2 += NumberFormats.BF16ToFloat(w2[i]) * xi; s3 += NumberFormats.BF16ToFloat(w3[i]) * xi;
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    /// <summary>Four consecutive FP8 rows (each with its row of block scales) against x·2^64, each in <see cref="DotFp8Row"/>'s order.</summary>
    private static void DotFp8Rowx4(byte* w, int n, float* x, float* sc0, float* sc1, float* sc2, float* sc3, float* y)
    {
        byte* w0 = w, w1 = w + n, w2 = w + 2L * n, w3 = w + 3L * n;
        Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
        int c = 0, b = 0;
        for (; c + Block <= n; c += Block, b++)
        {
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
            for (int i = c; i < c + Block; i += 32)
            {
                Vector512<float> x0 = Avx512F.LoadVector512(x + i), x1 = Avx512F.LoadVector512(x + i + 16);
                a00 = Avx512F.FusedMultiplyAdd(Fp8x16(w0 + i), x0, a00); a01 = Avx512F.FusedMultiplyAdd(Fp8x16(w0 + i + 16), x1, a01);
                a10 = Avx512F.FusedMultiplyAdd(Fp8x16(w1 + i), x0, a10); a11 = Avx512F.FusedMultiplyAdd(Fp8x16(w1 + i + 16), x1, a11);
                a20 = Avx512F.FusedMultiplyAdd(Fp8x16(w2 + i), x0, a20); a21 = Avx512F.FusedMultiplyAdd(Fp8x16(w2 + i + 16), x1, a21);
                a30 = Avx512F.FusedMultiplyAdd(Fp8x16(w3 + i), x0, a30); a31 = Avx512F.FusedMultiplyAdd(Fp8x16(w3 + i + 16), x1, a31);
            }
            t0 = Avx512F.FusedMultiplyAdd(a00 + a01, Vector512.Create(sc0[b]), t0);
            t1 = Avx512F.FusedMultiplyAdd(a10 + a11, Vector512.Create(sc1[b]), t1);
            t2 = Avx512F.FusedMultiplyAdd(a20 + a21, Vector512.Create(sc2[b]), t2);
            t3 = Avx512F.FusedMultiplyAdd(a30 + a31, Vector512.Create(sc3[b]), t3);
        }
        float s0 = Vector512.Sum(t0) * Fp8VectorRescale, s1 = Vector512.Sum(t1) * Fp8VectorRescale;
        float s2 = Vector512.Sum(t2) * Fp8VectorRescale, s3 = Vector512.Sum(t3) * Fp8VectorRescale;
        for (; c < n; c += Block, b++)
        {
            int len = Math.Min(Block, n - c);
            s0 += DotFp8(w0 + c, x + c, len) * sc0[b]; s1 += DotFp8(w1 + c, x + c, len) * sc1[b];
            s2 += DotFp8(w2 + c, x + c, len) * sc2[b]; s3 += DotFp8(w3 + c, x + c, len) * sc3[b];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
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
