using Cluster.Engine.Kernels;

namespace Cluster.Engine.Model;

/// <summary>RMSNorm with a learned scale, applied to rows of its width.</summary>
public sealed class RmsNorm(float[] weight, double eps)
{
    private readonly float _eps = (float)eps;

    public int Dim => weight.Length;

    public void Forward(ReadOnlySpan<float> x, Span<float> y) => Norm.Rms(x, weight, _eps, y);
}
