using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Kernels;

/// <summary>
/// y[b, r] = x[b, :] · W[rowStart + r, :] (PyTorch's F.linear without bias) reading W in its stored dtype,
/// parallel over output rows. Batch 1 streams each weight row once through a fused decode-and-dot, four rows sharing
/// each load of x; larger batches decode a tile of rows to float32 once and reuse it for every token. The CPU backend's matmul
/// (<see cref="CpuKernels"/>), parallel on the worker pool it is given.
/// </summary>
public static unsafe class MatMul
{
    /// <summary>Rows decoded together for batches: four rows share each load of x.</summary>
    private const int Tile = 4;
    /// <summary>The float32 bytes of a block of decoded rows, and of a block of tokens' x, in the batched kernel.</summary>
    private const int BlockBytes = 128 * 1024;
    /// <summary>At or below this batch the fused decode-and-dot beats decoding to a scratch row.</summary>
    private const int DirectBatch = 2;
    /// <summary>
    /// BF16 rows shorter than <see cref="SharedXCols"/> take batches up to this through the fused kernel too, each row
    /// read once for all of them (<see cref="RowKernels.DotTokens"/>): 1.1-1.7x at batch 4 (bench kernels). FP8, and
    /// rows whose four x rows outgrow L1, measured no gain, so they keep the decode-to-float tile.
    /// </summary>
    private const int SharedRowBatch = 4;

    private static bool SharesRows(DType dtype, int cols, int batch) => batch > 1 && batch <= SharedRowBatch && dtype == DType.BF16 && cols < SharedXCols;

    /// <summary>Whether a batch goes through the fused decode-and-dot path (which takes FP8 inputs pre-scaled) rather than the tile.</summary>
    private static bool Fused(DType dtype, int cols, int batch) => batch <= DirectBatch || SharesRows(dtype, cols, batch);
    /// <summary>
    /// From this row length (16 KB of x) the fused path runs four rows per load of x (<see cref="RowKernels.Dot4"/>):
    /// measured by `bench kernels`, 1.2-1.7x on DeepSeek-V3's rows of 7168-18432, but 0.4-0.6x on rows of 512-2048,
    /// whose four short streams the prefetcher follows worse than one.
    /// </summary>
    private const int SharedXCols = 4096;

    [ThreadStatic] private static float[]? t_scratch;

    public static void Run(WorkerPool pool, ReadOnlySpan<float> x, int batch, Weight w, Span<float> y) =>
        Run(pool, x, w.Cols, batch, w, 0, w.Rows, y, w.Rows);

    /// <summary>Strided form: x rows <paramref name="xStride"/> apart, y rows <paramref name="yStride"/> apart.</summary>
    public static void Run(WorkerPool pool, ReadOnlySpan<float> x, int xStride, int batch, Weight w, int rowStart, int rows, Span<float> y, int yStride, bool parallel = true)
    {
        int cols = w.Cols;
        if (w.Shape.Length != 2) throw new ArgumentException($"tensor {w.Name}: matmul needs a matrix, got a vector");
        if ((uint)rowStart > (uint)w.Rows || (uint)rows > (uint)(w.Rows - rowStart)) throw new ArgumentOutOfRangeException(nameof(rows));
        if (batch <= 0 || rows == 0) return;
        if (x.Length < (long)(batch - 1) * xStride + cols) throw new ArgumentException($"tensor {w.Name}: input has {x.Length} values, need {batch} rows of {cols}");
        if (y.Length < (long)(batch - 1) * yStride + rows) throw new ArgumentException($"tensor {w.Name}: output has {y.Length} values, need {batch} rows of {rows}");
        float[]? scaled = null;
        if (w.DType == DType.F8E4M3 && Fused(w.DType, cols, batch))
        {
            scaled = System.Buffers.ArrayPool<float>.Shared.Rent(batch * cols);
            for (int b = 0; b < batch; b++) RowKernels.ScaleForFp8(x.Slice(b * xStride, cols), scaled.AsSpan(b * cols, cols));
            x = scaled;
            xStride = cols;
        }
        try
        {
            Run(pool, x, xStride, batch, w, rowStart, rows, y, yStride, parallel, cols);
        }
        finally
        {
            if (scaled is not null) System.Buffers.ArrayPool<float>.Shared.Return(scaled);
        }
    }

    private static void Run(WorkerPool pool, ReadOnlySpan<float> x, int xStride, int batch, Weight w, int rowStart, int rows, Span<float> y, int yStride, bool parallel, int cols)
    {
        fixed (float* px = x, py = y)
        {
            var job = new Job { W = new WeightView(w), X = px, XStride = xStride, Batch = batch, RowStart = rowStart, Y = py, YStride = yStride };
            if (parallel)
            {
                // Keep a chunk large enough (64K multiply-adds) that dispatch is small next to its work; smaller
                // matrices (the router's) run on the calling thread.
                int grain = Math.Max(1, 65536 / Math.Max(1, cols * batch));
                grain = (grain + Tile - 1) / Tile * Tile;
                pool.For(rows, grain, &job, &Body);
            }
            else Body(&job, 0, rows);
        }
    }

    [ThreadStatic] private static PairJob? t_pair;

    /// <summary>
    /// Two matrices over the same input in one parallel pass (gate_proj with up_proj, q_a_proj with
    /// kv_a_proj_with_mqa): one handoff to the worker threads instead of two, which counts at batch 1.
    /// </summary>
    public static void RunPair(WorkerPool pool, ReadOnlySpan<float> x, int batch, Weight a, Span<float> ya, Weight b, Span<float> yb)
    {
        int cols = a.Cols;
        if (b.Cols != cols) throw new ArgumentException($"tensors {a.Name} and {b.Name}: different input widths ({cols} and {b.Cols})");
        if (batch <= 0) return;
        if (x.Length < batch * cols || ya.Length < batch * a.Rows || yb.Length < batch * b.Rows)
            throw new ArgumentException($"tensors {a.Name}, {b.Name}: buffers too short for {batch} rows");
        fixed (float* px = x, pa = ya, pb = yb)
        {
            PairJob job = t_pair ??= new PairJob();
            job.Set(px, batch, a, pa, b, pb, pool);
            try { pool.For(a.Rows + b.Rows, Math.Max(1, 65536 / Math.Max(1, cols * batch)), job); }
            finally { job.Set(null, 0, null, null, null, null, null); }
        }
    }

    /// <summary>Output rows [0, a.Rows) of the first matrix followed by the second's, each range single-threaded.</summary>
    private sealed class PairJob : IRangeBody
    {
        private float* _x, _ya, _yb;
        private int _batch;
        private Weight? _a, _b;
        private WorkerPool? _pool;

        public void Set(float* x, int batch, Weight? a, float* ya, Weight? b, float* yb, WorkerPool? pool)
        {
            _x = x; _batch = batch; _a = a; _ya = ya; _b = b; _yb = yb; _pool = pool;
        }

        public void Run(int start, int end)
        {
            Weight a = _a!, b = _b!;
            int cols = a.Cols, split = a.Rows;
            var x = new ReadOnlySpan<float>(_x, _batch * cols);
            if (start < split)
            {
                int stop = Math.Min(end, split);
                MatMul.Run(_pool!, x, cols, _batch, a, start, stop - start, new Span<float>(_ya + start, _batch * split - start), split, parallel: false);
            }
            if (end > split)
            {
                int from = Math.Max(start, split) - split, stop = end - split;
                MatMul.Run(_pool!, x, cols, _batch, b, from, stop - from, new Span<float>(_yb + from, _batch * b.Rows - from), b.Rows, parallel: false);
            }
        }
    }

    private struct Job
    {
        public WeightView W;
        public float* X, Y;
        public int XStride, YStride, Batch, RowStart;
    }

    private static void Body(void* context, int start, int end)
    {
        ref Job j = ref *(Job*)context;
        if (SharesRows(j.W.Type, j.W.Cols, j.Batch))
        {
            // Up to four tokens per read of each row; a smaller batch repeats its last token and drops the extra sums.
            float* outs = stackalloc float[4];
            float* x0 = j.X, x1 = j.X + (long)Math.Min(1, j.Batch - 1) * j.XStride, x2 = j.X + (long)Math.Min(2, j.Batch - 1) * j.XStride, x3 = j.X + (long)(j.Batch - 1) * j.XStride;
            for (int row = start; row < end; row++)
            {
                RowKernels.DotTokens(j.W, j.RowStart + row, x0, x1, x2, x3, outs);
                for (int b = 0; b < j.Batch; b++) j.Y[(long)b * j.YStride + row] = outs[b];
            }
            return;
        }
        if (j.Batch <= DirectBatch)
        {
            float* four = stackalloc float[Tile];
            int row = start;
            // Four rows at a time only where x outgrows L1: on short rows the one-row stream prefetches better.
            if (j.W.Cols >= SharedXCols)
                for (; row + Tile <= end; row += Tile)
                    for (int b = 0; b < j.Batch; b++)
                    {
                        RowKernels.Dot4(j.W, j.RowStart + row, j.X + (long)b * j.XStride, four);
                        for (int t = 0; t < Tile; t++) j.Y[(long)b * j.YStride + row + t] = four[t];
                    }
            for (; row < end; row++)
                for (int b = 0; b < j.Batch; b++)
                    j.Y[(long)b * j.YStride + row] = RowKernels.Dot(j.W, j.RowStart + row, j.X + (long)b * j.XStride);
            return;
        }
        int cols = j.W.Cols;
        // A block of rows decoded together and a block of tokens, each about BlockBytes of float32: every 4-row tile of
        // the row block passes over the token block while it is in L2, instead of streaming every token's x from L3
        // once per tile. Each output is still one Dot4x4/Dot4 chain over all of k, so no bit changes.
        int rowBlock = Math.Max(Tile, BlockBytes / (4 * cols) / Tile * Tile);
        int tokenBlock = Math.Max(4, BlockBytes / (4 * cols) / 4 * 4);
        float[] scratch = t_scratch is { } s && s.Length >= rowBlock * cols ? s : (t_scratch = new float[rowBlock * cols]);
        fixed (float* rowsBuf = scratch)
        {
            int r = start;
            for (; r + Tile <= end; r += rowBlock)
            {
                int tiles = Math.Min(rowBlock, end - r) / Tile * Tile;
                for (int t = 0; t < tiles; t++) RowKernels.Decode(j.W, j.RowStart + r + t, rowsBuf + (long)t * cols);
                for (int b0 = 0; b0 < j.Batch; b0 += tokenBlock)
                {
                    int b1 = Math.Min(j.Batch, b0 + tokenBlock);
                    for (int t = 0; t < tiles; t += Tile)
                    {
                        float* w = rowsBuf + (long)t * cols;
                        int b = b0;
                        if (Avx512F.IsSupported)
                            for (; b + 4 <= b1; b += 4)
                                Dot4x4(j.X + (long)b * j.XStride, j.XStride, w, cols, j.Y + (long)b * j.YStride + r + t, j.YStride);
                        for (; b < b1; b++)
                            Dot4(j.X + (long)b * j.XStride, w, cols, j.Y + (long)b * j.YStride + r + t);
                    }
                }
                if (tiles < rowBlock)
                {
                    r += tiles;
                    break;
                }
            }
            for (; r < end; r++)
            {
                RowKernels.Decode(j.W, j.RowStart + r, rowsBuf);
                for (int b = 0; b < j.Batch; b++)
                    j.Y[(long)b * j.YStride + r] = Dot1(j.X + (long)b * j.XStride, rowsBuf, cols);
            }
        }
    }

    /// <summary>
    /// A 4x4 register tile: four tokens' rows of x against four decoded weight rows, so each loaded vector feeds
    /// four FMAs and the batched kernels run at FMA rather than load throughput.
    /// </summary>
    private static void Dot4x4(float* x, int xStride, float* w, int n, float* y, int yStride)
    {
        float* x0 = x, x1 = x + xStride, x2 = x + 2 * xStride, x3 = x + 3 * xStride;
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        int k = 0;
        for (; k <= n - 16; k += 16)
        {
            Vector512<float> v0 = Avx512F.LoadVector512(w0 + k), v1 = Avx512F.LoadVector512(w1 + k);
            Vector512<float> v2 = Avx512F.LoadVector512(w2 + k), v3 = Avx512F.LoadVector512(w3 + k);
            Vector512<float> xv = Avx512F.LoadVector512(x0 + k);
            a00 = Avx512F.FusedMultiplyAdd(v0, xv, a00); a01 = Avx512F.FusedMultiplyAdd(v1, xv, a01);
            a02 = Avx512F.FusedMultiplyAdd(v2, xv, a02); a03 = Avx512F.FusedMultiplyAdd(v3, xv, a03);
            xv = Avx512F.LoadVector512(x1 + k);
            a10 = Avx512F.FusedMultiplyAdd(v0, xv, a10); a11 = Avx512F.FusedMultiplyAdd(v1, xv, a11);
            a12 = Avx512F.FusedMultiplyAdd(v2, xv, a12); a13 = Avx512F.FusedMultiplyAdd(v3, xv, a13);
            xv = Avx512F.LoadVector512(x2 + k);
            a20 = Avx512F.FusedMultiplyAdd(v0, xv, a20); a21 = Avx512F.FusedMultiplyAdd(v1, xv, a21);
            a22 = Avx512F.FusedMultiplyAdd(v2, xv, a22); a23 = Avx512F.FusedMultiplyAdd(v3, xv, a23);
            xv = Avx512F.LoadVector512(x3 + k);
            a30 = Avx512F.FusedMultiplyAdd(v0, xv, a30); a31 = Avx512F.FusedMultiplyAdd(v1, xv, a31);
            a32 = Avx512F.FusedMultiplyAdd(v2, xv, a32); a33 = Avx512F.FusedMultiplyAdd(v3, xv, a33);
        }
        float* s = stackalloc float[16];
        s[0] = Vector512.Sum(a00); s[1] = Vector512.Sum(a01); s[2] = Vector512.Sum(a02); s[3] = Vector512.Sum(a03);
        s[4] = Vector512.Sum(a10); s[5] = Vector512.Sum(a11); s[6] = Vector512.Sum(a12); s[7] = Vector512.Sum(a13);
        s[8] = Vector512.Sum(a20); s[9] = Vector512.Sum(a21); s[10] = Vector512.Sum(a22); s[11] = Vector512.Sum(a23);
        s[12] = Vector512.Sum(a30); s[13] = Vector512.Sum(a31); s[14] = Vector512.Sum(a32); s[15] = Vector512.Sum(a33);
        for (; k < n; k++)
            for (int i = 0; i < 4; i++)
            {
                float xi = x[(long)i * xStride + k];
                s[i * 4] += w0[k] * xi; s[i * 4 + 1] += w1[k] * xi; s[i * 4 + 2] += w2[k] * xi; s[i * 4 + 3] += w3[k] * xi;
            }
        for (int i = 0; i < 4; i++)
            for (int t = 0; t < 4; t++) y[(long)i * yStride + t] = s[i * 4 + t];
    }

    /// <summary>Four dot products of x with four consecutive decoded rows, loading x once.</summary>
    private static void Dot4(float* x, float* w, int n, float* y)
    {
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n;
        int i = 0;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        if (Avx512F.IsSupported)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= n - 16; i += 16)
            {
                Vector512<float> xv = Avx512F.LoadVector512(x + i);
                a0 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w0 + i), xv, a0);
                a1 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w1 + i), xv, a1);
                a2 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w2 + i), xv, a2);
                a3 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w3 + i), xv, a3);
            }
            s0 = Vector512.Sum(a0); s1 = Vector512.Sum(a1); s2 = Vector512.Sum(a2); s3 = Vector512.Sum(a3);
        }
        else if (Fma.IsSupported)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= n - 8; i += 8)
            {
                Vector256<float> xv = Avx.LoadVector256(x + i);
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + i), xv, a0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + i), xv, a1);
                a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + i), xv, a2);
                a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + i), xv, a3);
            }
            s0 = Vector256.Sum(a0); s1 = Vector256.Sum(a1); s2 = Vector256.Sum(a2); s3 = Vector256.Sum(a3);
        }
        for (; i < n; i++)
        {
            float xi = x[i];
            s0 += w0[i] * xi; s1 += w1[i] * xi; s2 += w2[i] * xi; s3 += w3[i] * xi;
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    /// <summary>
    /// One dot product with the same accumulation order as <see cref="Dot4"/> and <see cref="Dot4x4"/>, so a row's
    /// result does not depend on which kernel (and so which thread split) computed it.
    /// </summary>
    private static float Dot1(float* x, float* w, int n)
    {
        int i = 0;
        float s = 0;
        if (Avx512F.IsSupported)
        {
            Vector512<float> a = default;
            for (; i <= n - 16; i += 16) a = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w + i), Avx512F.LoadVector512(x + i), a);
            s = Vector512.Sum(a);
        }
        else if (Fma.IsSupported)
        {
            Vector256<float> a = default;
            for (; i <= n - 8; i += 8) a = Fma.MultiplyAdd(Avx.LoadVector256(w + i), Avx.LoadVector256(x + i), a);
            s = Vector256.Sum(a);
        }
        for (; i < n; i++) s += w[i] * x[i];
        return s;
    }

    /// <summary>
    /// y[b, :] += Σ_k x[b, k] · W[rowStart + k, :] (x times W, not W^T) on the calling thread: absorbs a query
    /// through kv_b_proj's key rows, and sums cached latent rows weighted by attention probabilities. The rows are
    /// decoded once (F32 rows are read in place), then each 4x64 block of y stays in registers for all k, every
    /// element a chain of fused multiply-adds in k order whichever block or tail computed it.
    /// </summary>
    public static void AccumulateTransposed(ReadOnlySpan<float> x, int xStride, int batch, Weight w, int rowStart, int rows, Span<float> y, int yStride)
    {
        int cols = w.Cols;
        if ((uint)rowStart > (uint)w.Rows || (uint)rows > (uint)(w.Rows - rowStart)) throw new ArgumentOutOfRangeException(nameof(rows));
        if (batch <= 0 || rows == 0) return;
        if (x.Length < (long)(batch - 1) * xStride + rows || y.Length < (long)(batch - 1) * yStride + cols)
            throw new ArgumentException($"tensor {w.Name}: buffers too short for {batch} rows");
        fixed (float* px = x, py = y)
        {
            if (w.DType == DType.F32)
            {
                AccumulateRows(px, xStride, batch, (float*)w.Data + (long)rowStart * cols, rows, cols, py, yStride);
                return;
            }
            var view = new WeightView(w);
            float[] decoded = t_decoded is { } d && d.Length >= rows * cols ? d : (t_decoded = new float[rows * cols]);
            fixed (float* pw = decoded)
            {
                for (int k = 0; k < rows; k++) RowKernels.Decode(view, rowStart + k, pw + (long)k * cols);
                AccumulateRows(px, xStride, batch, pw, rows, cols, py, yStride);
            }
        }
    }

    [ThreadStatic] private static float[]? t_decoded;

    private static void AccumulateRows(float* x, int xStride, int batch, float* w, int rows, int cols, float* y, int yStride)
    {
        int b = 0;
        if (Avx512F.IsSupported)
            for (; b + 4 <= batch; b += 4)
            {
                int c = 0;
                for (; c + 64 <= cols; c += 64) Accumulate4x64(x + (long)b * xStride, xStride, w + c, rows, cols, y + (long)b * yStride + c, yStride);
                for (int i = 0; i < 4; i++) AccumulateTail(x + (long)(b + i) * xStride, w, rows, cols, c, y + (long)(b + i) * yStride);
            }
        for (; b < batch; b++) AccumulateTail(x + (long)b * xStride, w, rows, cols, 0, y + (long)b * yStride);
    }

    /// <summary>Four rows of y, 64 columns: 16 accumulators, each W vector loaded once for four FMAs.</summary>
    private static void Accumulate4x64(float* x, int xStride, float* w, int rows, int wStride, float* y, int yStride)
    {
        float* y0 = y, y1 = y + yStride, y2 = y + 2 * yStride, y3 = y + 3 * yStride;
        Vector512<float> a00 = Avx512F.LoadVector512(y0), a01 = Avx512F.LoadVector512(y0 + 16), a02 = Avx512F.LoadVector512(y0 + 32), a03 = Avx512F.LoadVector512(y0 + 48);
        Vector512<float> a10 = Avx512F.LoadVector512(y1), a11 = Avx512F.LoadVector512(y1 + 16), a12 = Avx512F.LoadVector512(y1 + 32), a13 = Avx512F.LoadVector512(y1 + 48);
        Vector512<float> a20 = Avx512F.LoadVector512(y2), a21 = Avx512F.LoadVector512(y2 + 16), a22 = Avx512F.LoadVector512(y2 + 32), a23 = Avx512F.LoadVector512(y2 + 48);
        Vector512<float> a30 = Avx512F.LoadVector512(y3), a31 = Avx512F.LoadVector512(y3 + 16), a32 = Avx512F.LoadVector512(y3 + 32), a33 = Avx512F.LoadVector512(y3 + 48);
        for (int k = 0; k < rows; k++)
        {
            float* wk = w + (long)k * wStride;
            Vector512<float> v0 = Avx512F.LoadVector512(wk), v1 = Avx512F.LoadVector512(wk + 16), v2 = Avx512F.LoadVector512(wk + 32), v3 = Avx512F.LoadVector512(wk + 48);
            Vector512<float> s = Vector512.Create(x[k]);
            a00 = Avx512F.FusedMultiplyAdd(v0, s, a00); a01 = Avx512F.FusedMultiplyAdd(v1, s, a01); a02 = Avx512F.FusedMultiplyAdd(v2, s, a02); a03 = Avx512F.FusedMultiplyAdd(v3, s, a03);
            s = Vector512.Create(x[xStride + k]);
            a10 = Avx512F.FusedMultiplyAdd(v0, s, a10); a11 = Avx512F.FusedMultiplyAdd(v1, s, a11); a12 = Avx512F.FusedMultiplyAdd(v2, s, a12); a13 = Avx512F.FusedMultiplyAdd(v3, s, a13);
            s = Vector512.Create(x[2 * xStride + k]);
            a20 = Avx512F.FusedMultiplyAdd(v0, s, a20); a21 = Avx512F.FusedMultiplyAdd(v1, s, a21); a22 = Avx512F.FusedMultiplyAdd(v2, s, a22); a23 = Avx512F.FusedMultiplyAdd(v3, s, a23);
            s = Vector512.Create(x[3 * xStride + k]);
            a30 = Avx512F.FusedMultiplyAdd(v0, s, a30); a31 = Avx512F.FusedMultiplyAdd(v1, s, a31); a32 = Avx512F.FusedMultiplyAdd(v2, s, a32); a33 = Avx512F.FusedMultiplyAdd(v3, s, a33);
        }
        a00.Store(y0); a01.Store(y0 + 16); a02.Store(y0 + 32); a03.Store(y0 + 48);
        a10.Store(y1); a11.Store(y1 + 16); a12.Store(y1 + 32); a13.Store(y1 + 48);
        a20.Store(y2); a21.Store(y2 + 16); a22.Store(y2 + 32); a23.Store(y2 + 48);
        a30.Store(y3); a31.Store(y3 + 16); a32.Store(y3 + 32); a33.Store(y3 + 48);
    }

    /// <summary>One row of y from column <paramref name="from"/> on: 16 columns at a time, then one at a time, in the same k order.</summary>
    private static void AccumulateTail(float* x, float* w, int rows, int cols, int from, float* y)
    {
        int c = from;
        if (Avx512F.IsSupported)
            for (; c + 16 <= cols; c += 16)
            {
                Vector512<float> a = Avx512F.LoadVector512(y + c);
                for (int k = 0; k < rows; k++) a = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w + (long)k * cols + c), Vector512.Create(x[k]), a);
                a.Store(y + c);
            }
        for (; c < cols; c++)
        {
            float a = y[c];
            for (int k = 0; k < rows; k++) a = MathF.FusedMultiplyAdd(w[(long)k * cols + c], x[k], a);
            y[c] = a;
        }
    }
}
