using System.Numerics.Tensors;

namespace Cluster.Engine.Kernels;

public static class Activations
{
    /// <summary>SwiGLU's gating in place: gate = silu(gate) * up = gate * sigmoid(gate) * up.</summary>
    public static void SiluMul(Span<float> gate, ReadOnlySpan<float> up)
    {
        if (up.Length != gate.Length) throw new ArgumentException("SiluMul: gate and up differ in length");
        Span<float> sig = stackalloc float[256];
        for (int i = 0; i < gate.Length; i += sig.Length)
        {
            int n = Math.Min(sig.Length, gate.Length - i);
            Span<float> g = gate.Slice(i, n), s = sig[..n];
            TensorPrimitives.Sigmoid(g, s);
            TensorPrimitives.Multiply(g, s, g);
            TensorPrimitives.Multiply(g, up.Slice(i, n), g);
        }
    }

    /// <summary>Softmax in place, shifted by the maximum so large scores do not overflow.</summary>
    public static void Softmax(Span<float> x)
    {
        if (x.IsEmpty) return;
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        TensorPrimitives.Divide(x, TensorPrimitives.Sum(x), x);
    }
}
