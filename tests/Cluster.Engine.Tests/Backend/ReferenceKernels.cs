using Cluster.Engine.Backend;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Backend;

/// <summary>
/// <see cref="IKernels"/> in float64, one plain loop per operation on the calling thread: weights through the
/// scalar <see cref="Weight.DequantizeRow"/>, every sum and transcendental in double, each result rounded to
/// float once. Shares nothing with the CPU kernels; slow and simple on purpose.
/// </summary>
internal sealed class ReferenceKernels : IKernels
{
    public void MatMul(ReadOnlySpan<float> x, int batch, Weight w, Span<float> y) => MatMul(x, w.Cols, batch, w, 0, w.Rows, y, w.Rows);

    public void MatMul(ReadOnlySpan<float> x, int xStride, int batch, Weight w, int rowStart, int rows, Span<float> y, int yStride, bool parallel = true)
    {
        var row = new float[w.Cols];
        for (int r = 0; r < rows; r++)
        {
            w.DequantizeRow(rowStart + r, row);
            for (int b = 0; b < batch; b++)
            {
                double sum = 0;
                for (int k = 0; k < row.Length; k++) sum += (double)row[k] * x[b * xStride + k];
                y[b * yStride + r] = (float)sum;
            }
        }
    }

    public void MatMulPair(ReadOnlySpan<float> x, int batch, Weight a, Span<float> ya, Weight b, Span<float> yb)
    {
        MatMul(x, batch, a, ya);
        MatMul(x, batch, b, yb);
    }

    public void AccumulateTransposed(ReadOnlySpan<float> x, int xStride, int batch, Weight w, int rowStart, int rows, Span<float> y, int yStride)
    {
        var row = new float[w.Cols];
        var sums = new double[batch * w.Cols];
        for (int k = 0; k < rows; k++)
        {
            w.DequantizeRow(rowStart + k, row);
            for (int b = 0; b < batch; b++)
                for (int c = 0; c < row.Length; c++) sums[b * row.Length + c] += (double)x[b * xStride + k] * row[c];
        }
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < row.Length; c++) y[b * yStride + c] = (float)(y[b * yStride + c] + sums[b * row.Length + c]);
    }

    public void LatentAttention(ReadOnlySpan<float> q, int heads, in ForwardBatch batch, ILatentMemory memory, int layer, float scale, int latentWidth, Span<float> context)
    {
        int width = memory.RowSize;
        for (int r = 0; r < batch.Rows; r++)
        {
            int length = batch.Positions[r] + 1;
            var rows = new float[length * width];
            memory.ReadSequence(layer, batch.BlockTable(batch.SequenceIds[r]), 0, length, rows);
            for (int h = 0; h < heads; h++)
            {
                ReadOnlySpan<float> query = q.Slice((r * heads + h) * width, width);
                var scores = new double[length];
                double max = double.NegativeInfinity, total = 0;
                for (int t = 0; t < length; t++)
                {
                    double dot = 0;
                    for (int c = 0; c < width; c++) dot += (double)query[c] * rows[t * width + c];
                    scores[t] = dot * scale;
                    max = Math.Max(max, scores[t]);
                }
                for (int t = 0; t < length; t++) total += scores[t] = Math.Exp(scores[t] - max);
                for (int c = 0; c < latentWidth; c++)
                {
                    double sum = 0;
                    for (int t = 0; t < length; t++) sum += scores[t] * rows[t * width + c];
                    context[(r * heads + h) * latentWidth + c] = (float)(sum / total);
                }
            }
        }
    }

    public void Embed(Weight table, ReadOnlySpan<int> ids, Span<float> rows)
    {
        for (int i = 0; i < ids.Length; i++) table.DequantizeRow(ids[i], rows.Slice(i * table.Cols, table.Cols));
    }

    public void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        int d = weight.Length;
        for (int r = 0; r < x.Length; r += d)
        {
            double squares = 0;
            for (int i = 0; i < d; i++) squares += (double)x[r + i] * x[r + i];
            double scale = 1 / Math.Sqrt(squares / d + eps);
            for (int i = 0; i < d; i++) y[r + i] = (float)(x[r + i] * scale * weight[i]);
        }
    }

    public void SiluMul(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            double g = gate[i];
            gate[i] = (float)(g / (1 + Math.Exp(-g)) * up[i]);
        }
    }

    public void Softmax(Span<float> x)
    {
        if (x.IsEmpty) return;
        double max = double.NegativeInfinity, total = 0;
        foreach (float v in x) max = Math.Max(max, v);
        var e = new double[x.Length];
        for (int i = 0; i < x.Length; i++) total += e[i] = Math.Exp(x[i] - max);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(e[i] / total);
    }

    public void Sigmoid(ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = (float)(1 / (1 + Math.Exp(-(double)x[i])));
    }

    public void Rope(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, bool interleaved)
    {
        int h = cos.Length;
        double[] a = new double[h], b = new double[h];
        for (int j = 0; j < h; j++)
            (a[j], b[j]) = interleaved ? (x[2 * j], x[2 * j + 1]) : (x[j], x[j + h]);
        for (int j = 0; j < h; j++)
        {
            x[j] = (float)(a[j] * cos[j] - b[j] * sin[j]);
            x[j + h] = (float)(b[j] * cos[j] + a[j] * sin[j]);
        }
    }

    public float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += (double)a[i] * b[i];
        return (float)sum;
    }

    public void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        for (int i = 0; i < a.Length; i++) y[i] = (float)((double)a[i] + b[i]);
    }

    public void Multiply(ReadOnlySpan<float> x, float scale, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = (float)((double)x[i] * scale);
    }

    public void MultiplyAdd(ReadOnlySpan<float> x, float scale, ReadOnlySpan<float> addend, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = (float)((double)x[i] * scale + addend[i]);
    }

    public void For(int count, int grain, IRangeBody body) => body.Run(0, count);
}
