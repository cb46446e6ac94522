using Cluster.Engine.Kernels;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Kernels;

public class MatMulTests
{
    /// <summary>Three threads, so a matrix splits into uneven chunks even on a 2-core machine.</summary>
    private static readonly WorkerPool Pool = new CpuBackend(3).Pool;

    internal static float[] Random(int n, int seed, float scale = 1)
    {
        var r = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(r.NextDouble() * 2 - 1) * scale;
        return v;
    }

    /// <summary>y = x W^T in float64 from the weight's scalar dequantisation, and Σ|x·w| per output for the tolerance.</summary>
    private static (double[] Y, double[] Magnitude) Reference(float[] x, int batch, Weight w, int rowStart, int rows)
    {
        var y = new double[batch * rows];
        var mag = new double[batch * rows];
        var row = new float[w.Cols];
        for (int r = 0; r < rows; r++)
        {
            w.DequantizeRow(rowStart + r, row);
            for (int b = 0; b < batch; b++)
                for (int k = 0; k < w.Cols; k++)
                {
                    y[b * rows + r] += (double)x[b * w.Cols + k] * row[k];
                    mag[b * rows + r] += Math.Abs((double)x[b * w.Cols + k] * row[k]);
                }
        }
        return (y, mag);
    }

    public static TheoryData<DType, int, int, int> Cases()
    {
        var data = new TheoryData<DType, int, int, int>();
        foreach (DType t in new[] { DType.F32, DType.BF16, DType.F16, DType.F8E4M3 })
            foreach (int batch in new[] { 1, 2, 3, 9 })
                foreach ((int rows, int cols) in new[] { (37, 301), (300, 256), (5, 7) })
                    data.Add(t, batch, rows, cols);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesFloat64Reference(DType dtype, int batch, int rows, int cols)
    {
        Weight w = Weight.FromFloats("w", [rows, cols], Random(rows * cols, rows + cols, 0.5f), dtype);
        float[] x = Random(batch * cols, 1000 + batch);
        var y = new float[batch * rows];
        MatMul.Run(Pool, x, batch, w, y);
        var (expected, mag) = Reference(x, batch, w, 0, rows);
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - expected[i]) <= 2e-6 * mag[i] + 1e-6, $"{dtype} batch {batch} [{i}]: {y[i]} vs {expected[i]}");
    }

    /// <summary>
    /// Above the fused path of batches up to four, every output is one dot product whose bits do not depend on which
    /// kernel took it (the 4x4 tile, four rows against one token, one row alone): the whole 9 x 7 product against each
    /// row computed on its own and against the last five tokens alone, with a length that leaves a scalar tail.
    /// </summary>
    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F32)]
    public void ARowGivesTheSameBitsFromEveryKernel(DType dtype)
    {
        const int batch = 9, rows = 7, cols = 1000;
        (Weight w, float[] x, float[] all) = EachRowAloneGivesTheBitsOfTheWhole(dtype, batch, rows, cols, 5);
        var last = new float[5 * rows];
        MatMul.Run(Pool, x.AsSpan(4 * cols), 5, w, last);
        Assert.Equal(all.AsSpan(4 * rows).ToArray(), last);
    }

    /// <summary>
    /// A prefill-sized batch runs in blocks of rows and of tokens: 70 tokens by 75 rows of 512 spans two token blocks,
    /// a full and a partial row block and a tail of three rows, and each output keeps the bits of its row computed
    /// alone and stays within float32 rounding of the float64 product.
    /// </summary>
    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F32)]
    [InlineData(DType.F8E4M3)]
    public void BlocksOfRowsAndTokensKeepEveryOutputsBits(DType dtype)
    {
        const int batch = 70, rows = 75, cols = 512;
        (Weight w, float[] x, float[] all) = EachRowAloneGivesTheBitsOfTheWhole(dtype, batch, rows, cols, 11);
        var (expected, mag) = Reference(x, batch, w, 0, rows);
        for (int i = 0; i < all.Length; i++)
            Assert.True(Math.Abs(all[i] - expected[i]) <= 2e-6 * mag[i] + 1e-6, $"{dtype} [{i}]: {all[i]} vs {expected[i]}");
    }

    /// <summary>At batch 1 and 2 on long rows, four rows that share each load of x give the bits of each row alone (a partial FP8 block and a scalar tail included).</summary>
    [Theory]
    [InlineData(DType.BF16, 1)]
    [InlineData(DType.BF16, 2)]
    [InlineData(DType.F8E4M3, 1)]
    [InlineData(DType.F8E4M3, 2)]
    public void FourRowsAtOnceGiveTheBitsOfEachRowAlone(DType dtype, int batch) => EachRowAloneGivesTheBitsOfTheWhole(dtype, batch, rows: 139, cols: 4100, seed: 8);

    /// <summary>The whole product of a random weight and input, checked against each output row computed on its own.</summary>
    private static (Weight W, float[] X, float[] All) EachRowAloneGivesTheBitsOfTheWhole(DType dtype, int batch, int rows, int cols, int seed)
    {
        Weight w = Weight.FromFloats("w", [rows, cols], Random(rows * cols, seed, 0.5f), dtype);
        float[] x = Random(batch * cols, seed + 1);
        var all = new float[batch * rows];
        MatMul.Run(Pool, x, batch, w, all);
        var one = new float[batch];
        for (int r = 0; r < rows; r++)
        {
            MatMul.Run(Pool, x, cols, batch, w, r, 1, one, 1);
            for (int b = 0; b < batch; b++) Assert.Equal(all[b * rows + r], one[b]);
        }
        return (w, x, all);
    }

    /// <summary>BF16 rows under 4096: up to four tokens, each gets the bits it gets alone (decode batches of 2-4 read each row once for all of them).</summary>
    [Theory]
    [InlineData(1000)]
    [InlineData(4090)]
    public void EachTokenOfASmallBatchGetsItsBitsAlone(int cols)
    {
        const DType dtype = DType.BF16;
        const int rows = 37;
        Weight w = Weight.FromFloats("w", [rows, cols], Random(rows * cols, 10, 0.5f), dtype);
        float[] x = Random(4 * cols, 11);
        var alone = new float[4 * rows];
        for (int t = 0; t < 4; t++) MatMul.Run(Pool, x.AsSpan(t * cols, cols), 1, w, alone.AsSpan(t * rows, rows));
        for (int batch = 2; batch <= 4; batch++)
        {
            var together = new float[batch * rows];
            MatMul.Run(Pool, x.AsSpan(0, batch * cols), batch, w, together);
            Assert.Equal(alone.AsSpan(0, batch * rows).ToArray(), together);
        }
    }

    [Fact]
    public void Fp8EqualsMatMulOverDequantisedWeights()
    {
        int rows = 200, cols = 520;
        Weight fp8 = Weight.FromFloats("w", [rows, cols], Random(rows * cols, 3, 3f), DType.F8E4M3);
        var dequantised = new float[rows * cols];
        for (int r = 0; r < rows; r++) fp8.DequantizeRow(r, dequantised.AsSpan(r * cols, cols));
        Weight f32 = Weight.FromFloats("w", [rows, cols], dequantised, DType.F32);
        foreach (int batch in new[] { 1, 4 })
        {
            float[] x = Random(batch * cols, 9);
            float[] a = new float[batch * rows], b = new float[batch * rows];
            MatMul.Run(Pool, x, batch, fp8, a);
            MatMul.Run(Pool, x, batch, f32, b);
            for (int i = 0; i < a.Length; i++) Assert.Equal(b[i], a[i], 1e-4f * (1 + Math.Abs(b[i])));
        }
    }

    [Fact]
    public void StridedRowRangeWritesOnlyItsSlots()
    {
        int rows = 40, cols = 64, batch = 3, xStride = 80, yStride = 30;
        Weight w = Weight.FromFloats("w", [rows, cols], Random(rows * cols, 5), DType.BF16);
        float[] xDense = Random(batch * cols, 6);
        var x = new float[(batch - 1) * xStride + cols];
        for (int b = 0; b < batch; b++) xDense.AsSpan(b * cols, cols).CopyTo(x.AsSpan(b * xStride));
        var y = new float[(batch - 1) * yStride + 12];
        Array.Fill(y, 42f);
        MatMul.Run(Pool, x, xStride, batch, w, 10, 12, y, yStride, parallel: false);
        var (expected, mag) = Reference(xDense, batch, w, 10, 12);
        for (int b = 0; b < batch; b++)
        {
            for (int r = 0; r < 12; r++) Assert.True(Math.Abs(y[b * yStride + r] - expected[b * 12 + r]) <= 2e-6 * mag[b * 12 + r] + 1e-6);
            if (b < batch - 1) Assert.All(y.AsSpan(b * yStride + 12, yStride - 12).ToArray(), v => Assert.Equal(42f, v));
        }
    }

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F8E4M3)]
    public void AccumulateTransposedMatchesReference(DType dtype)
    {
        int rows = 150, cols = 140, batch = 3, k = 20, start = 7;
        Weight w = Weight.FromFloats("w", [rows, cols], Random(rows * cols, 11), dtype);
        float[] x = Random(batch * k, 12);
        float[] y = Random(batch * cols, 13);
        var expected = new double[batch * cols];
        var row = new float[cols];
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < cols; c++) expected[b * cols + c] = y[b * cols + c];
        for (int j = 0; j < k; j++)
        {
            w.DequantizeRow(start + j, row);
            for (int b = 0; b < batch; b++)
                for (int c = 0; c < cols; c++) expected[b * cols + c] += (double)x[b * k + j] * row[c];
        }
        MatMul.AccumulateTransposed(x, k, batch, w, start, k, y, cols);
        for (int i = 0; i < y.Length; i++) Assert.Equal(expected[i], y[i], 1e-4);
    }

    [Theory]
    [InlineData(DType.BF16, 1)]
    [InlineData(DType.F8E4M3, 1)]
    [InlineData(DType.BF16, 5)]
    public void PairEqualsTwoSeparateRuns(DType dtype, int batch)
    {
        int cols = 300;
        Weight a = Weight.FromFloats("a", [130, cols], Random(130 * cols, 21), dtype);
        Weight b = Weight.FromFloats("b", [77, cols], Random(77 * cols, 22), dtype);
        float[] x = Random(batch * cols, 23);
        float[] ya = new float[batch * 130], yb = new float[batch * 77], ea = new float[batch * 130], eb = new float[batch * 77];
        MatMul.RunPair(Pool, x, batch, a, ya, b, yb);
        MatMul.Run(Pool, x, batch, a, ea);
        MatMul.Run(Pool, x, batch, b, eb);
        Assert.Equal(ea, ya);
        Assert.Equal(eb, yb);
    }

    [Fact]
    public void RejectsShortBuffersNamingTheTensor()
    {
        Weight w = Weight.FromFloats("model.x.weight", [4, 8], new float[32], DType.BF16);
        var e = Assert.Throws<ArgumentException>(() => MatMul.Run(Pool, new float[7], 1, w, new float[4]));
        Assert.Contains("model.x.weight", e.Message);
    }
}
