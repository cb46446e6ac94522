using System.Buffers;
using Cluster.Engine.Backend;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Model;

/// <summary>DeepSeekMoE: the gate picks routed experts per token; the shared experts see every token.</summary>
public sealed class Moe(Gate gate, IRoutedExperts experts, Mlp? shared) : IFeedForward
{
    public Gate Gate => gate;
    public IRoutedExperts Experts => experts;
    public Mlp? Shared => shared;

    /// <summary>Loads the gate and shared experts; the routed experts too unless <paramref name="routed"/> supplies them.</summary>
    public static Moe Load(ITensorSource source, ModelConfig config, int layer, IRoutedExperts? routed = null, IKernels? kernels = null)
    {
        kernels ??= CpuBackend.Default.Kernels;
        string prefix = $"model.layers.{layer}.mlp";
        Mlp? shared = config.NSharedExperts > 0
            ? Mlp.Load(source, prefix + ".shared_experts", config.HiddenSize, config.MoeIntermediateSize * config.NSharedExperts, kernels)
            : null;
        return new Moe(Gate.Load(source, prefix + ".gate", config, kernels), routed ?? RoutedExperts.Load(source, config, layer, kernels: kernels), shared);
    }

    /// <summary>Whether the routed experts can be left working between <see cref="Begin"/> and <see cref="Finish"/>.</summary>
    public bool CanOverlap => experts is IOverlappedExperts;

    // Each micro-batch's routing, from its Begin to its Finish.
    private readonly int[][] _ids = [[], []];
    private readonly float[][] _weights = [[], []];

    /// <summary>Routes micro-batch <paramref name="slot"/>'s rows and sends them to the experts (needs <see cref="CanOverlap"/>).</summary>
    public void Begin(int slot, ReadOnlySpan<float> x, int n)
    {
        int k = gate.TopK;
        if (_ids[slot].Length < n * k) (_ids[slot], _weights[slot]) = (new int[n * k], new float[n * k]);
        gate.Route(x, n, _ids[slot], _weights[slot]);
        ((IOverlappedExperts)experts).Begin(slot, x, n, _ids[slot].AsSpan(0, n * k), _weights[slot].AsSpan(0, n * k));
    }

    /// <summary>y = the layer's output for what <see cref="Begin"/> sent of the same rows <paramref name="x"/>.</summary>
    public void Finish(int slot, ReadOnlySpan<float> x, int n, Span<float> y) => ((IOverlappedExperts)experts).Finish(slot, x, n, y, shared);

    public void Abandon(int slot)
    {
        if (experts is IOverlappedExperts overlapped) overlapped.Abandon(slot);
    }

    public void Forward(ReadOnlySpan<float> x, int n, Span<float> y)
    {
        int k = gate.TopK;
        int[] ids = ArrayPool<int>.Shared.Rent(n * k);
        float[] weights = ArrayPool<float>.Shared.Rent(n * k);
        gate.Route(x, n, ids, weights);
        experts.Run(x, n, ids.AsSpan(0, n * k), weights.AsSpan(0, n * k), y, shared);
        ArrayPool<int>.Shared.Return(ids);
        ArrayPool<float>.Shared.Return(weights);
    }
}
