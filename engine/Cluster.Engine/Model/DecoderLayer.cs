using System.Buffers;
using Cluster.Engine.Backend;
using Cluster.Engine.Config;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Model;

/// <summary>Pre-norm residual block: h += attn(norm(h)); h += ffn(norm(h)).</summary>
public sealed class DecoderLayer(RmsNorm inputNorm, Mla attention, RmsNorm postAttentionNorm, IFeedForward feedForward, IKernels kernels)
{
    public Mla Attention => attention;
    public IFeedForward FeedForward => feedForward;

    /// <summary><paramref name="routedExperts"/> (layer -> experts) replaces the locally loaded routed experts when given.</summary>
    public static DecoderLayer Load(ITensorSource source, ModelConfig config, int layer, Rotary rotary, IKernels kernels, Func<int, IRoutedExperts>? routedExperts = null)
    {
        string p = $"model.layers.{layer}";
        int hidden = config.HiddenSize;
        IFeedForward ffn = config.IsMoeLayer(layer)
            ? Moe.Load(source, config, layer, routedExperts?.Invoke(layer), kernels)
            : Mlp.Load(source, p + ".mlp", hidden, config.IntermediateSize, kernels);
        return new DecoderLayer(
            new RmsNorm(TensorShapes.Vector(source, p + ".input_layernorm.weight", hidden), config.RmsNormEps, kernels),
            new Mla(source, config, layer, rotary, kernels),
            new RmsNorm(TensorShapes.Vector(source, p + ".post_attention_layernorm.weight", hidden), config.RmsNormEps, kernels),
            ffn, kernels);
    }

    /// <summary>Updates the hidden states h [batch.Rows, hidden] in place.</summary>
    public void Forward(Span<float> h, in ForwardBatch batch, ILatentMemory memory, AttentionPath path)
    {
        int n = batch.Rows;
        float[] normed = ArrayPool<float>.Shared.Rent(h.Length), delta = ArrayPool<float>.Shared.Rent(h.Length);
        Span<float> ns = normed.AsSpan(0, h.Length), ds = delta.AsSpan(0, h.Length);
        inputNorm.Forward(h, ns);
        attention.Forward(ns, batch, memory, path, ds);
        kernels.Add(h, ds, h);
        postAttentionNorm.Forward(h, ns);
        feedForward.Forward(ns, n, ds);
        kernels.Add(h, ds, h);
        ArrayPool<float>.Shared.Return(normed);
        ArrayPool<float>.Shared.Return(delta);
    }
}
