using System.Buffers;
using Cluster.Engine.Backend;
using Cluster.Engine.Kernels;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Model;

/// <summary>SwiGLU: down(silu(gate(x)) * up(x)). The dense MLP, a shared expert and each routed expert.</summary>
public sealed class Mlp(Weight gate, Weight up, Weight down, IKernels kernels) : IFeedForward
{
    public int Hidden => gate.Cols;
    public int Intermediate => gate.Rows;

    /// <summary>Bytes of its three weights (with FP8 scales).</summary>
    public long Bytes => gate.TotalBytes + up.TotalBytes + down.TotalBytes;

    /// <summary>Loads "{prefix}.gate_proj.weight", up_proj and down_proj.</summary>
    public static Mlp Load(ITensorSource source, string prefix, int hidden, int intermediate, IKernels? kernels = null) => new(
        TensorShapes.Matrix(source, prefix + ".gate_proj.weight", intermediate, hidden),
        TensorShapes.Matrix(source, prefix + ".up_proj.weight", intermediate, hidden),
        TensorShapes.Matrix(source, prefix + ".down_proj.weight", hidden, intermediate),
        kernels ?? CpuBackend.Default.Kernels);

    public void Forward(ReadOnlySpan<float> x, int n, Span<float> y)
    {
        int inter = Intermediate;
        float[] g = ArrayPool<float>.Shared.Rent(n * inter), u = ArrayPool<float>.Shared.Rent(n * inter);
        Span<float> gs = g.AsSpan(0, n * inter), us = u.AsSpan(0, n * inter);
        kernels.MatMulPair(x, n, gate, gs, up, us);
        kernels.SiluMul(gs, us);
        kernels.MatMul(gs, n, down, y);
        ArrayPool<float>.Shared.Return(g);
        ArrayPool<float>.Shared.Return(u);
    }
}
