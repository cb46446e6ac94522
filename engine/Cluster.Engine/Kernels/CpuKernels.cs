using System.Numerics.Tensors;
using Cluster.Engine.Backend;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Kernels;

/// <summary>
/// The CPU backend's kernels: <see cref="MatMul"/> on the backend's <see cref="WorkerPool"/>, the row kernels'
/// AVX-512/AVX2/scalar dtype decoding, TensorPrimitives for the element-wise math.
/// </summary>
public sealed class CpuKernels(WorkerPool pool) : IKernels
{
    public WorkerPool Pool => pool;

    public void MatMul(ReadOnlySpan<float> x, int batch, Weight w, Span<float> y) => Kernels.MatMul.Run(pool, x, batch, w, y);

    public void MatMul(ReadOnlySpan<float> x, int xStride, int batch, Weight w, int rowStart, int rows, Span<float> y, int yStride, bool parallel = true) =>
        Kernels.MatMul.Run(pool, x, xStride, batch, w, rowStart, rows, y, yStride, parallel);

    public void MatMulPair(ReadOnlySpan<float> x, int batch, Weight a, Span<float> ya, Weight b, Span<float> yb) =>
        Kernels.MatMul.RunPair(pool, x, batch, a, ya, b, yb);

    public void AccumulateTransposed(ReadOnlySpan<float> x, int xStride, int batch, Weight w, int rowStart, int rows, Span<float> y, int yStride) =>
        Kernels.MatMul.AccumulateTransposed(x, xStride, batch, w, rowStart, rows, y, yStride);

    [ThreadStatic] private static LatentAttention? t_attention;

    public void LatentAttention(ReadOnlySpan<float> q, int heads, in ForwardBatch batch, ILatentMemory memory, int layer, float scale, int latentWidth, Span<float> context)
    {
        LatentAttention job = t_attention is { } j && j.Pool == pool ? j : (t_attention = new LatentAttention(pool));
        job.Run(q, heads, batch, memory, layer, scale, latentWidth, context);
    }

    public unsafe void Embed(Weight table, ReadOnlySpan<int> ids, Span<float> rows)
    {
        int cols = table.Cols;
        if (rows.Length < (long)ids.Length * cols) throw new ArgumentException($"tensor {table.Name}: {rows.Length} values for {ids.Length} rows of {cols}");
        var view = new WeightView(table);
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)table.Rows) throw new ArgumentOutOfRangeException(nameof(ids), $"row {ids[i]} of tensor {table.Name} out of range 0..{table.Rows - 1}");
            fixed (float* dst = rows.Slice(i * cols, cols)) RowKernels.Decode(view, ids[i], dst);
        }
    }

    public void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y) => Norm.Rms(x, weight, eps, y);

    public void SiluMul(Span<float> gate, ReadOnlySpan<float> up) => Activations.SiluMul(gate, up);

    public void Softmax(Span<float> x) => Activations.Softmax(x);

    public void Sigmoid(ReadOnlySpan<float> x, Span<float> y) => TensorPrimitives.Sigmoid(x, y);

    public void Rope(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, bool interleaved) => Kernels.Rope.Apply(x, cos, sin, interleaved);

    public float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => TensorPrimitives.Dot(a, b);

    public void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => TensorPrimitives.Add(a, b, y);

    public void Multiply(ReadOnlySpan<float> x, float scale, Span<float> y) => TensorPrimitives.Multiply(x, scale, y);

    public void MultiplyAdd(ReadOnlySpan<float> x, float scale, ReadOnlySpan<float> addend, Span<float> y) => TensorPrimitives.MultiplyAdd(x, scale, addend, y);

    public void For(int count, int grain, IRangeBody body) => pool.For(count, grain, body);
}
