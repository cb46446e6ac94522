using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
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
    private readonly float[] _probs, _candidateProbs;
    private readonly int[] _order;
    private Xoshiro256 _random;

    public Sampler(SamplingOptions options, int vocab)
    {
        options.Validate();
        if (options.TopK > vocab || options.TopLogprobs > vocab) throw new ArgumentException($"top_k/top_logprobs larger than the vocabulary ({vocab})");
        _options = options;
        _random = new Xoshiro256(options.Seed);
        _probs = new float[vocab];
        _candidateProbs = new float[vocab];
        _order = new int[vocab];
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

    /// <summary>
    /// Advances the generator exactly as one <see cref="Sample"/> does, for a sequence whose token was sampled
    /// elsewhere (a prefill node, or the node a migrated request ran on first) and continues here with the same seed.
    /// </summary>
    public void SkipDraw()
    {
        // Every sampled (non-greedy) choice takes exactly one uniform draw, whichever filter path it follows.
        if (_options.Temperature != 0) _random.NextDouble();
    }

    private int Draw(ReadOnlySpan<float> logits)
    {
        int vocab = logits.Length;
        float invT = (float)(1 / _options.Temperature), max = TensorPrimitives.Max(logits);
        Span<int> candidates = _order;
        Span<float> p = _candidateProbs;
        int count;
        double total;
        if (_options.TopK > 0)
        {
            count = _options.TopK;
            TopK.Select(logits, candidates[..count]);
            total = 0;
            for (int i = 0; i < count; i++) total += p[i] = MathF.Exp((logits[candidates[i]] - max) * invT);
        }
        else
        {
            Span<float> all = _probs;
            TensorPrimitives.Subtract(logits, max, all);
            TensorPrimitives.Multiply(all, invT, all);
            TensorPrimitives.Exp(all, all);
            total = TensorPrimitives.Sum<float>(all);
            if (_options.TopP >= 1) return Walk(all, _random.NextDouble() * total, null);
            // The nucleus is usually small: rank a few candidates first.
            count = Math.Min(64, vocab);
            TopK.Select(logits, candidates[..count]);
            double mass = 0;
            for (int i = 0; i < count; i++) mass += p[i] = all[candidates[i]];
            if (mass < _options.TopP * total && count < vocab)
            {
                // A wide nucleus (a flat distribution): it is the set of tokens at or above a probability threshold,
                // found by bisection, and sampling from a set needs no ranking.
                float threshold = NucleusThreshold(all, _options.TopP * total);
                count = 0;
                mass = 0;
                for (int i = 0; i < vocab; i++)
                    if (all[i] >= threshold) { candidates[count] = i; mass += p[count++] = all[i]; }
                return Walk(p[..count], _random.NextDouble() * mass, candidates);
            }
        }

        if (_options.TopP < 1)
        {
            // Keep the smallest prefix of the ranking whose probability reaches top_p (at least one token).
            double cut = _options.TopP * total, sum = 0;
            int keep = 0;
            while (keep < count && sum < cut) sum += p[keep++];
            count = Math.Max(1, keep);
            total = 0;
            for (int i = 0; i < count; i++) total += p[i];
        }
        return Walk(p[..count], _random.NextDouble() * total, candidates);
    }

    /// <summary>
    /// The largest probability t such that the tokens with probability >= t hold at least <paramref name="cut"/>:
    /// bisection over float32 bit patterns (ordered like the values for non-negative floats).
    /// </summary>
    private static float NucleusThreshold(ReadOnlySpan<float> probs, double cut)
    {
        static double MassFrom(ReadOnlySpan<float> probs, float t)
        {
            // Float lanes over blocks of 4096 values, then double across blocks: fast and far more precise than the
            // probabilities' own rounding.
            double mass = 0;
            var threshold = Vector256.Create(t);
            int i = 0;
            while (i <= probs.Length - 8)
            {
                var block = Vector256<float>.Zero;
                int end = Math.Min(probs.Length - 8, i + 4096);
                for (; i <= end; i += 8)
                {
                    var v = Vector256.Create(probs.Slice(i, 8));
                    block += Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(v, threshold), v, Vector256<float>.Zero);
                }
                mass += Vector256.Sum(block);
            }
            for (; i < probs.Length; i++) if (probs[i] >= t) mass += probs[i];
            return mass;
        }
        uint low = 0, high = BitConverter.SingleToUInt32Bits(TensorPrimitives.Max(probs));
        if (MassFrom(probs, BitConverter.UInt32BitsToSingle(high)) >= cut) return BitConverter.UInt32BitsToSingle(high);
        while (high - low > 1)
        {
            uint mid = low + (high - low) / 2;
            if (MassFrom(probs, BitConverter.UInt32BitsToSingle(mid)) >= cut) low = mid; else high = mid;
        }
        return BitConverter.UInt32BitsToSingle(low);
    }

    /// <summary>The index where the running sum of <paramref name="p"/> passes u (mapped through ids when given).</summary>
    private static int Walk(ReadOnlySpan<float> p, double u, Span<int> ids)
    {
        double acc = 0;
        for (int i = 0; i < p.Length; i++)
        {
            acc += p[i];
            if (u < acc) return ids.IsEmpty ? i : ids[i];
        }
        int last = p.Length - 1;
        return ids.IsEmpty ? last : ids[last];
    }

    private static double LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += Math.Exp(logits[i] - max);
        return max + Math.Log(sum);
    }
}
