using Cluster.Engine.Backend;

namespace Cluster.Engine.Model;

/// <summary>RMSNorm with a learned scale, applied to rows of its width.</summary>
public sealed class RmsNorm(float[] weight, double eps, IKernels kernels)
{
    private readonly float _eps = (float)eps;

    public int Dim => weight.Length;

    public void Forward(ReadOnlySpan<float> x, Span<float> y) => kernels.RmsNorm(x, weight, _eps, y);
}
