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

    /// <summary>Whether <see cref="Begin"/> leaves work in flight for <see cref="Finish"/> (a MoE layer on expert nodes).</summary>
    public bool CanOverlap => feedForward is Moe { CanOverlap: true };

    // Each micro-batch's post-attention norm, from its Begin to its Finish (the experts may need the rows again).
    private readonly float[]?[] _normed = [null, null];
    private readonly int[] _rows = new int[2];

    /// <summary>
    /// The first part of <see cref="Forward"/> for micro-batch <paramref name="slot"/>: attention and its residual,
    /// then the feed-forward, which on an overlapping MoE layer is only begun; <see cref="Finish"/> completes it.
    /// </summary>
    public void Begin(Span<float> h, in ForwardBatch batch, ILatentMemory memory, AttentionPath path, int slot)
    {
        if (feedForward is not Moe { CanOverlap: true } moe)
        {
            Forward(h, batch, memory, path);
            return;
        }
        float[] normed = ArrayPool<float>.Shared.Rent(h.Length), delta = ArrayPool<float>.Shared.Rent(h.Length);
        Span<float> ns = normed.AsSpan(0, h.Length);
        Attend(h, batch, memory, path, ns, delta.AsSpan(0, h.Length));
        ArrayPool<float>.Shared.Return(delta);
        try { moe.Begin(slot, ns, batch.Rows); }
        catch
        {
            ArrayPool<float>.Shared.Return(normed);
            throw;
        }
        (_normed[slot], _rows[slot]) = (normed, batch.Rows);
    }

    /// <summary>Completes micro-batch <paramref name="slot"/>'s <see cref="Begin"/>: adds the experts' output to h.</summary>
    public void Finish(Span<float> h, int slot)
    {
        if (_normed[slot] is not { } normed) return;
        _normed[slot] = null;
        float[] delta = ArrayPool<float>.Shared.Rent(h.Length);
        try
        {
            ((Moe)feedForward).Finish(slot, normed.AsSpan(0, h.Length), _rows[slot], delta.AsSpan(0, h.Length));
            kernels.Add(h, delta.AsSpan(0, h.Length), h);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(delta);
            ArrayPool<float>.Shared.Return(normed);
        }
    }

    /// <summary>Drops micro-batch <paramref name="slot"/>'s begun work after a failure elsewhere in the pass.</summary>
    public void Abandon(int slot)
    {
        if (_normed[slot] is not { } normed) return;
        _normed[slot] = null;
        try { ((Moe)feedForward).Abandon(slot); }
        finally { ArrayPool<float>.Shared.Return(normed); }
    }

    /// <summary>Updates the hidden states h [batch.Rows, hidden] in place.</summary>
    public void Forward(Span<float> h, in ForwardBatch batch, ILatentMemory memory, AttentionPath path)
    {
        int n = batch.Rows;
        float[] normed = ArrayPool<float>.Shared.Rent(h.Length), delta = ArrayPool<float>.Shared.Rent(h.Length);
        Span<float> ns = normed.AsSpan(0, h.Length), ds = delta.AsSpan(0, h.Length);
        Attend(h, batch, memory, path, ns, ds);
        feedForward.Forward(ns, n, ds);
        kernels.Add(h, ds, h);
        ArrayPool<float>.Shared.Return(normed);
        ArrayPool<float>.Shared.Return(delta);
    }

    /// <summary>h += attention(norm(h)), leaving the post-attention norm of h in <paramref name="normed"/> (<paramref name="delta"/> is scratch).</summary>
    private void Attend(Span<float> h, in ForwardBatch batch, ILatentMemory memory, AttentionPath path, Span<float> normed, Span<float> delta)
    {
        inputNorm.Forward(h, normed);
        attention.Forward(normed, batch, memory, path, delta);
        kernels.Add(h, delta, h);
        postAttentionNorm.Forward(h, normed);
    }
}
