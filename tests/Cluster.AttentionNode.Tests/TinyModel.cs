using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.Engine.Sampling;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// The tiny preset written once per test run as a real checkpoint (no tokenizer files: every id can be sampled),
/// and the single-process reference the node's outputs are compared with.
/// </summary>
public static class TinyModel
{
    public static string Directory => TestCheckpoints.Dir(Config, 7);

    public static ModelConfig Config { get; } = SyntheticModel.ConfigFor(SyntheticPresets.Tiny, DType.BF16);

    /// <summary>A model of the tiny checkpoint with all experts local; <paramref name="experts"/> may wrap them.</summary>
    public static (Transformer Model, Checkpoint Checkpoint) Load(Func<int, IRoutedExperts, IRoutedExperts>? experts = null)
    {
        var checkpoint = Checkpoint.Open(Directory);
        var config = checkpoint.Config;
        Func<int, IRoutedExperts>? factory = experts is null ? null : l => experts(l, RoutedExperts.Load(checkpoint, config, l));
        return (Transformer.Load(config, checkpoint, null, factory), checkpoint);
    }

    /// <summary>A deterministic prompt of <paramref name="length"/> ids (the first is BOS).</summary>
    public static uint[] Prompt(int seed, int length)
    {
        var ids = new uint[length];
        var rng = new SplitMix64((ulong)seed + 1);
        ids[0] = (uint)(Config.BosTokenId ?? 0);
        for (int i = 1; i < length; i++) ids[i] = (uint)(2 + rng.Next() % (ulong)(Config.VocabSize - 2));
        return ids;
    }

    /// <summary>
    /// Single-process greedy, the way <c>cluster generate</c> runs it: prefill, then one decode step per token, no
    /// EOS stop, over a cache in <paramref name="format"/> (the nodes' default is BF16). Also returns the top-1
    /// minus top-2 logit margin at every step.
    /// </summary>
    public static (int[] Tokens, float[] Margins) Greedy(Transformer model, ReadOnlySpan<uint> prompt, int count, LatentFormat format = LatentFormat.BF16)
    {
        int vocab = model.Config.VocabSize;
        var ids = new int[prompt.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = (int)prompt[i];
        var cache = new SequenceCache(model.Config, format: format);
        var logits = new float[vocab];
        var sampler = new Sampler(new SamplingOptions(), vocab);
        var tokens = new int[count];
        var margins = new float[count];
        model.Prefill(ids, cache, AttentionPath.Naive, logits, lastRowOnly: true);
        for (int t = 0; t < count; t++)
        {
            tokens[t] = sampler.Sample(logits).Id;
            margins[t] = Margin(logits);
            if (t + 1 < count) model.Decode([tokens[t]], [cache], logits);
        }
        return (tokens, margins);
    }

    private static float Margin(ReadOnlySpan<float> logits)
    {
        float first = float.NegativeInfinity, second = float.NegativeInfinity;
        foreach (float v in logits)
        {
            if (v > first) { second = first; first = v; }
            else if (v > second) second = v;
        }
        return first - second;
    }
}
