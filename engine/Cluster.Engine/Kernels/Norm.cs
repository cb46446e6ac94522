using System.Numerics.Tensors;

namespace Cluster.Engine.Kernels;

public static class Norm
{
    /// <summary>RMSNorm of each row: y = x / sqrt(mean(x²) + eps) * weight (float32, as HF computes it).</summary>
    public static void Rms(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        int d = weight.Length;
        if (x.Length % d != 0 || y.Length < x.Length) throw new ArgumentException($"RMSNorm: {x.Length} values are not rows of {d}");
        for (int r = 0; r < x.Length; r += d)
        {
            ReadOnlySpan<float> row = x.Slice(r, d);
            float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(row) / d + eps);
            Span<float> outRow = y.Slice(r, d);
            TensorPrimitives.Multiply(row, scale, outRow);
            TensorPrimitives.Multiply(outRow, weight, outRow);
        }
    }
}
