using System.Numerics.Tensors;
using Cluster.Engine.Kernels;

namespace Cluster.Engine.Sampling;

/// <summary>
/// Chooses tokens from logits for one sequence: greedy, or temperature with top-k and top-p filtering, from a
/// seeded generator (same seed and logits, same tokens). Log-probabilities are reported from the raw logits,
/// before temperature and filtering, as OpenAI's API does. Buffers are sized once for the vocabulary.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingOptions _options;
    private readonly float[] _probs;
    private readonly int[] _order;
    private readonly float[] _keys;
    private Xoshiro256 _random;

    public Sampler(SamplingOptions options, int vocab)
    {
        options.Validate();
        if (options.TopK > vocab || options.TopLogprobs > vocab) throw new ArgumentException($"top_k/top_logprobs larger than the vocabulary ({vocab})");
        _options = options;
        _random = new Xoshiro256(options.Seed);
        _probs = new float[vocab];
        _order = new int[vocab];
        _keys = options.TopK == 0 && options.TopP < 1 ? new float[vocab] : [];
    }

    public SampledToken Sample(ReadOnlySpan<float> logits)
    {
        if (logits.Length != _probs.Length) throw new ArgumentException($"{logits.Length} logits for a vocabulary of {_probs.Length}");
        int id = _options.Temperature == 0 ? TopK.Argmax(logits) : Draw(logits);
        double logZ = LogSumExp(logits);
        var top = _options.TopLogprobs == 0 ? [] : new TokenLogprob[_options.TopLogprobs];
        if (top.Length > 0)
        {
            Span<int> best = _order.AsSpan(0, top.Length);
            TopK.Select(logits, best);
            for (int i = 0; i < top.Length; i++) top[i] = new TokenLogprob(best[i], (float)(logits[best[i]] - logZ));
        }
        return new SampledToken(id, (float)(logits[id] - logZ), top);
    }

    private int Draw(ReadOnlySpan<float> logits)
    {
        // Candidates in descending order when a filter needs the ranking; otherwise all tokens in id order.
        int count = logits.Length;
        Span<int> candidates = _order;
        if (_options.TopK > 0)
        {
            count = _options.TopK;
            TopK.Select(logits, candidates[..count]);
        }
        else if (_options.TopP < 1)
        {
            for (int i = 0; i < count; i++) { candidates[i] = i; _keys[i] = -logits[i]; }
            Array.Sort(_keys, _order);
        }
        else for (int i = 0; i < count; i++) candidates[i] = i;

        float invT = (float)(1 / _options.Temperature);
        float max = float.NegativeInfinity;
        for (int i = 0; i < count; i++) max = MathF.Max(max, logits[candidates[i]]);
        Span<float> p = _probs.AsSpan(0, count);
        for (int i = 0; i < count; i++) p[i] = (logits[candidates[i]] - max) * invT;
        TensorPrimitives.Exp(p, p);
        double total = TensorPrimitives.Sum<float>(p);

        if (_options.TopP < 1)
        {
            // Keep the smallest prefix of the ranking whose probability reaches top_p (at least one token).
            double cut = _options.TopP * total, sum = 0;
            int keep = 0;
            while (keep < count && sum < cut) sum += p[keep++];
            count = Math.Max(1, keep);
            total = sum;
        }

        double u = _random.NextDouble() * total, acc = 0;
        for (int i = 0; i < count; i++)
        {
            acc += p[i];
            if (u < acc) return candidates[i];
        }
        return candidates[count - 1];
    }

    private static double LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += Math.Exp(logits[i] - max);
        return max + Math.Log(sum);
    }
}
