using System.Buffers;
using Cluster.Engine.Backend;
using Cluster.Engine.Cache;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Model;

/// <summary>
/// DeepSeek-V3 for causal LM: token embedding, decoder layers (dense MLP below first_k_dense_replace, MoE
/// above), final norm and lm_head. The MTP layer's tensors are not loaded. One forward pass at a time.
/// </summary>
public sealed class Transformer
{
    private readonly Weight _embed, _lmHead;
    private readonly DecoderLayer[] _layers;
    private readonly RmsNorm _norm;
    private readonly TokenBatch _batch = new();
    private readonly IKernels _kernels;

    private Transformer(IBackend backend, ModelConfig config, Weight embed, DecoderLayer[] layers, RmsNorm norm, Weight lmHead)
    {
        Backend = backend;
        _kernels = backend.Kernels;
        Config = config;
        _embed = embed;
        _layers = layers;
        _norm = norm;
        _lmHead = lmHead;
        bool any = false, all = true;
        foreach (DecoderLayer layer in layers)
            if (layer.FeedForward is Moe moe) (any, all) = (true, all && moe.CanOverlap);
        CanOverlap = any && all;
    }

    public ModelConfig Config { get; }
    public IBackend Backend { get; }

    /// <summary>
    /// Dual micro-batch overlap (DeepSeek's): a forward pass of two sequences or more is split into two halves at a
    /// sequence boundary (<see cref="SequenceSplit"/>), and while
    /// one half's rows are with the expert nodes the other half's attention runs. Takes effect only when every MoE
    /// layer's experts can overlap (<see cref="IOverlappedExperts"/>); the outputs are those of one pass up to the
    /// order of float sums on the expert nodes, which see two smaller batches.
    /// </summary>
    public bool OverlapMicroBatches { get; set; }

    /// <summary>Whether <see cref="OverlapMicroBatches"/> can take effect: some MoE layer, and every one's experts overlapping.</summary>
    public bool CanOverlap { get; }
    public IReadOnlyList<DecoderLayer> Layers => _layers;

    /// <summary>
    /// Binds every tensor of the model; <paramref name="progress"/> gets the fraction of layers done. With
    /// <paramref name="routedExperts"/> (MoE layer -> its routed experts, e.g. remote ones on expert nodes) the
    /// routed expert tensors are never read, so the source may leave them out; without it the backend hosts them
    /// all. The model runs on <paramref name="backend"/>, the CPU's by default.
    /// </summary>
    public static Transformer Load(ModelConfig config, ITensorSource source, IProgress<double>? progress = null, Func<int, IRoutedExperts>? routedExperts = null, IBackend? backend = null)
    {
        backend ??= CpuBackend.Default;
        IKernels kernels = backend.Kernels;
        IBackend host = backend;
        routedExperts ??= layer => host.LoadExperts(source, config, layer);
        int hidden = config.HiddenSize, vocab = config.VocabSize;
        Weight embed = TensorShapes.Matrix(source, "model.embed_tokens.weight", vocab, hidden);
        var rotary = new Rotary(config, kernels);
        var layers = new DecoderLayer[config.NumHiddenLayers];
        for (int l = 0; l < layers.Length; l++)
        {
            layers[l] = DecoderLayer.Load(source, config, l, rotary, kernels, routedExperts);
            progress?.Report((l + 1.0) / (layers.Length + 1));
        }
        var norm = new RmsNorm(TensorShapes.Vector(source, "model.norm.weight", hidden), config.RmsNormEps, kernels);
        Weight lmHead = config.TieWordEmbeddings && !source.Contains("lm_head.weight")
            ? embed
            : TensorShapes.Matrix(source, "lm_head.weight", vocab, hidden);
        progress?.Report(1.0);
        return new Transformer(backend, config, embed, layers, norm, lmHead);
    }

    /// <summary>
    /// The model's forward pass, as nano-vllm's model runner calls it: the batch's tokens through every layer,
    /// each layer writing the rows' latents to their slots of <paramref name="memory"/> and attending through the
    /// block tables. Logits go to <paramref name="logits"/>: [rows, vocab] for every row, or [1, vocab] for the
    /// last row only when <paramref name="lastRowOnly"/>. <paramref name="layerDone"/> hears each layer index as
    /// soon as that layer's rows are written.
    /// </summary>
    public void Forward(in ForwardBatch batch, ILatentMemory memory, AttentionPath path, Span<float> logits, bool lastRowOnly = false, Action<int>? layerDone = null)
    {
        int n = batch.Rows, hidden = Config.HiddenSize, vocab = Config.VocabSize;
        if (n > 0 && memory.RowSize != Config.KvLoraRank + Config.QkRopeHeadDim)
            throw new ArgumentException($"latent memory rows of {memory.RowSize} values; the model's are {Config.KvLoraRank + Config.QkRopeHeadDim}");
        ReadOnlySpan<int> tokens = batch.Tokens;
        int outRows = lastRowOnly ? 1 : n;
        if (logits.Length < outRows * vocab) throw new ArgumentException($"logits need {outRows} x {vocab} values");
        float[] h = ArrayPool<float>.Shared.Rent(n * hidden);
        try
        {
            Span<float> hs = h.AsSpan(0, n * hidden);
            Embed(tokens, hs);
            int half = OverlapMicroBatches && CanOverlap ? SequenceSplit(batch) : 0;
            if (half > 0) ForwardOverlapped(hs, batch, half, memory, path, layerDone);
            else
                for (int l = 0; l < _layers.Length; l++)
                {
                    _layers[l].Forward(hs, batch, memory, path);
                    layerDone?.Invoke(l);
                }
            Span<float> last = lastRowOnly ? hs.Slice((n - 1) * hidden, hidden) : hs;
            _norm.Forward(last, last);
            _kernels.MatMul(last, outRows, _lmHead, logits[..(outRows * vocab)]);
        }
        finally { ArrayPool<float>.Shared.Return(h); }
    }

    /// <summary>
    /// The layers over two halves of the batch, interleaved so that each half's dispatch is in flight while the other
    /// computes: A's attention, then per layer B's attention, A's combine and A's next attention, B's combine. A
    /// layer's rows of both halves are written before <paramref name="layerDone"/> hears of it.
    /// </summary>
    /// <summary>
    /// Where a batch splits into micro-batches: the sequence boundary nearest its middle row, 0 when it holds one
    /// sequence. A prompt's chunk is never split, so its rows are not sent out in two halves, each too small to gain.
    /// </summary>
    private static int SequenceSplit(in ForwardBatch batch)
    {
        ReadOnlySpan<int> sequences = batch.SequenceIds;
        int best = 0, middle = batch.Rows / 2;
        for (int r = 1; r < sequences.Length; r++)
            if (sequences[r] != sequences[r - 1] && (best == 0 || Math.Abs(r - middle) < Math.Abs(best - middle))) best = r;
        return best;
    }

    private void ForwardOverlapped(Span<float> h, in ForwardBatch batch, int half, ILatentMemory memory, AttentionPath path, Action<int>? layerDone)
    {
        int hidden = Config.HiddenSize;
        ForwardBatch a = batch.Slice(0, half), b = batch.Slice(half, batch.Rows - half);
        Span<float> ha = h[..(half * hidden)], hb = h[(half * hidden)..];
        try
        {
            _layers[0].Begin(ha, a, memory, path, 0);
            for (int l = 0; l < _layers.Length; l++)
            {
                _layers[l].Begin(hb, b, memory, path, 1);
                layerDone?.Invoke(l);
                _layers[l].Finish(ha, 0);
                if (l + 1 < _layers.Length) _layers[l + 1].Begin(ha, a, memory, path, 0);
                _layers[l].Finish(hb, 1);
            }
        }
        catch
        {
            // The other half may still have rows with the expert nodes: wait them out before the buffers go back.
            foreach (DecoderLayer layer in _layers)
            {
                layer.Abandon(0);
                layer.Abandon(1);
            }
            throw;
        }
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> (one per row of <paramref name="batch"/>) through every layer, writing
    /// their latents into the rows' caches: <see cref="Forward(in ForwardBatch, ILatentMemory, AttentionPath, Span{float}, bool, Action{int})"/>
    /// over <see cref="TokenBatch.Prepare"/>'s arrays.
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, TokenBatch batch, AttentionPath path, Span<float> logits, bool lastRowOnly = false, Action<int>? layerDone = null)
    {
        ForwardBatch prepared = batch.Prepare(tokens, out ILatentMemory memory);
        Forward(prepared, memory, path, logits, lastRowOnly, layerDone);
    }

    /// <summary>
    /// Feeds a sequence's next tokens at once (a prompt, or a chunk of one) and advances its cache.
    /// <paramref name="layerDone"/> hears each layer index as soon as that layer's cache rows of these tokens are written.
    /// </summary>
    public void Prefill(ReadOnlySpan<int> tokens, ILatentCache cache, AttentionPath path, Span<float> logits, bool lastRowOnly = false, Action<int>? layerDone = null)
    {
        int start = cache.Length;
        cache.Reserve(start + tokens.Length);
        _batch.Clear();
        for (int i = 0; i < tokens.Length; i++) _batch.Add(cache, start + i);
        Forward(tokens, _batch, path, logits, lastRowOnly, layerDone);
        _batch.Clear();
        cache.Advance(tokens.Length);
    }

    /// <summary>One decode step for a batch of sequences: token i continues caches[i]. Absorbed attention.</summary>
    public void Decode(ReadOnlySpan<int> tokens, IReadOnlyList<ILatentCache> caches, Span<float> logits)
    {
        if (tokens.Length != caches.Count) throw new ArgumentException($"{tokens.Length} tokens for {caches.Count} sequences");
        _batch.Clear();
        for (int i = 0; i < caches.Count; i++)
        {
            for (int j = 0; j < i; j++)
                if (ReferenceEquals(caches[i], caches[j])) throw new ArgumentException("a sequence appears twice in one decode step");
            caches[i].Reserve(caches[i].Length + 1);
            _batch.Add(caches[i], caches[i].Length);
        }
        Forward(tokens, _batch, AttentionPath.Absorbed, logits);
        _batch.Clear();
        foreach (ILatentCache c in caches) c.Advance(1);
    }

    private void Embed(ReadOnlySpan<int> tokens, Span<float> h)
    {
        foreach (int t in tokens)
            if ((uint)t >= (uint)Config.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {t} out of range 0..{Config.VocabSize - 1}");
        _kernels.Embed(_embed, tokens, h);
    }
}
