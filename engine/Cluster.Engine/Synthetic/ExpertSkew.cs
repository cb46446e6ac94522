using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Synthetic;

/// <summary>
/// Router biases that make expert popularity follow a Zipf-like law: the expert of rank r (1 = most popular) is
/// chosen by a fraction min(1, c * r^-S) of the tokens, c such that the fractions sum to num_experts_per_tok (an
/// expert is chosen at most once per token, so the head of the law saturates at 1; below it the rank-frequency
/// slope in log-log is -S). Real MoE checkpoints are skewed like this; a skewed synthetic model is what a placement
/// that balances load needs to be measured on.
/// <para>
/// The biases are calibrated, not derived: the layer's own router weight scores a fixed sample of unit-variance
/// rows (the gate's input is RMS-normalised), and the biases move in log-frequency steps until each expert's share
/// of the sample meets its target. The sample, the ranks and so the biases depend only on the seed and the tensor's
/// name. The ranks keep the hottest experts together in one group, then the next group, and so on, in a seeded order
/// of groups and of experts within a group, so the law stays reachable under group-limited routing (two hot experts
/// in different groups would force those two groups on every token and starve the rest).
/// </para>
/// </summary>
public static class ExpertSkew
{
    private const int SampleRows = 4096;
    private const int Rounds = 240;

    /// <summary>The target fraction of tokens per rank (index 0 = rank 1), summing to <paramref name="topK"/>.</summary>
    public static double[] TargetFractions(int experts, int topK, double skew)
    {
        if (skew < 0 || !double.IsFinite(skew)) throw new ArgumentOutOfRangeException(nameof(skew), $"expert skew must be >= 0 (got {skew})");
        if (topK > experts) throw new ArgumentException($"{topK} experts per token of {experts}");
        // Sum of min(1, c r^-S) grows with c: bisect for the c that gives topK.
        double lo = 0, hi = 1;
        while (Sum(experts, skew, hi) < topK) hi *= 2;
        for (int i = 0; i < 100; i++)
        {
            double mid = (lo + hi) / 2;
            if (Sum(experts, skew, mid) < topK) lo = mid; else hi = mid;
        }
        var fractions = new double[experts];
        for (int r = 0; r < experts; r++) fractions[r] = Math.Min(1, hi * Math.Pow(r + 1, -skew));
        return fractions;

        static double Sum(int experts, double skew, double c)
        {
            double s = 0;
            for (int r = 1; r <= experts; r++) s += Math.Min(1, c * Math.Pow(r, -skew));
            return s;
        }
    }

    /// <summary>
    /// The expert id of each rank for the router <paramref name="biasName"/>: groups in a seeded order, experts in a
    /// seeded order within each group, ranks filling one group before the next.
    /// </summary>
    public static int[] ExpertOfRank(ModelConfig config, long seed, string biasName)
    {
        int experts = config.NRoutedExperts, groups = config.NGroup, perGroup = experts / groups;
        var rng = new SplitMix64(SplitMix64.StreamSeed(seed, biasName + "/ranks", 0));
        int[] groupOrder = Shuffled(groups, ref rng);
        var order = new int[experts];
        for (int g = 0; g < groups; g++)
        {
            int[] within = Shuffled(perGroup, ref rng);
            for (int i = 0; i < perGroup; i++) order[g * perGroup + i] = groupOrder[g] * perGroup + within[i];
        }
        return order;
    }

    /// <summary>The calibrated e_score_correction_bias for the router whose weight is <paramref name="routerWeight"/>.</summary>
    public static float[] CalibrateBias(ModelConfig config, Weight routerWeight, long seed, string biasName, double skew)
    {
        int experts = config.NRoutedExperts, hidden = config.HiddenSize, topK = config.NumExpertsPerTok;
        double[] byRank = TargetFractions(experts, topK, skew);
        int[] ranked = ExpertOfRank(config, seed, biasName);
        var target = new double[experts];
        for (int r = 0; r < experts; r++) target[ranked[r]] = byRank[r];

        // Uniform in [-sqrt 3, sqrt 3): unit variance, as the RMS-normalised rows the gate sees.
        var rows = new float[SampleRows * hidden];
        var rng = new SplitMix64(SplitMix64.StreamSeed(seed, biasName + "/sample", 0));
        for (int i = 0; i < rows.Length; i++) rows[i] = MathF.Sqrt(3f) * rng.NextSigned();
        var logits = new float[SampleRows * experts];
        CpuBackend.Default.Kernels.MatMul(rows, SampleRows, routerWeight, logits);

        // The router's own selection over the precomputed logits (an identity projection), so the calibration
        // chooses exactly as the model will.
        var eye = new float[experts * experts];
        for (int e = 0; e < experts; e++) eye[e * experts + e] = 1;
        Weight identity = Weight.FromFloats(biasName + "/identity", [experts, experts], eye, DType.F32);
        var bias = new float[experts];
        var ids = new int[SampleRows * topK];
        var weights = new float[SampleRows * topK];
        var counts = new int[experts];
        for (int round = 0; round < Rounds; round++)
        {
            new Gate(identity, bias, config).Route(logits, SampleRows, ids, weights);
            Array.Clear(counts);
            foreach (int e in ids) counts[e]++;
            // Large steps first, small ones to settle; a fraction of zero counts as half a row.
            double step = 0.2 * Math.Pow(0.02, round / (double)(Rounds - 1));
            for (int e = 0; e < experts; e++)
            {
                double observed = Math.Max(counts[e], 0.5) / SampleRows;
                double error = Math.Clamp(Math.Log(target[e] / observed), -1, 1);
                bias[e] = Math.Clamp(bias[e] + (float)(step * error), -2f, 2f);
            }
        }
        return bias;
    }

    /// <summary>The bias tensor of <paramref name="spec"/> for a model of skew <paramref name="skew"/> (its router weight regenerated from the seed).</summary>
    public static Weight Bias(ModelConfig config, TensorSpec spec, long seed, double skew)
    {
        const string suffix = ".e_score_correction_bias";
        if (spec.Role != TensorRole.RouterBias || !spec.Name.EndsWith(suffix, StringComparison.Ordinal))
            throw new ArgumentException($"{spec.Name} is not a router bias");
        var weightSpec = new TensorSpec(spec.Name[..^suffix.Length] + ".weight", [config.NRoutedExperts, config.HiddenSize], DType.BF16, TensorRole.Router, spec.IsMtp);
        Weight router = SyntheticModel.Generate(weightSpec, seed);
        float[] bias = CalibrateBias(config, router, seed, spec.Name, skew);
        return Weight.FromFloats(spec.Name, spec.Shape, bias, spec.DType);
    }

    private static int[] Shuffled(int n, ref SplitMix64 rng)
    {
        var a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)(rng.Next() % (ulong)(i + 1));
            (a[i], a[j]) = (a[j], a[i]);
        }
        return a;
    }
}
