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
/// name. The ranks sit at seeded, arbitrary expert ids, as a real checkpoint's hot experts do (nothing ties
/// popularity to an id), with one constraint that group-limited routing imposes: a token reaches experts in only
/// topk_group groups, so each group is chosen by at least the fraction of its hottest expert, and the groups' hottest
/// fractions together must leave room within topk_group (two experts chosen by every token in different groups
/// force those two groups on every token and starve the rest). Ranks are dealt, hottest first, to a seeded random
/// free place in any group, except that a rank opens an empty group only while the hottest fractions of the groups,
/// counting the cheapest possible opener of each group still empty, stay within <see cref="GroupBudget"/> of topk_group.
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

    /// <summary>The share of topk_group that the groups' hottest fractions may take, so that the calibration has room to meet the law.</summary>
    public const double GroupBudget = 0.75;

    /// <summary>
    /// The expert id of each rank for the router <paramref name="biasName"/>: ranks dealt hottest first to seeded
    /// random free places, a rank opening an empty group only within the group budget (see the type's remarks).
    /// </summary>
    public static int[] ExpertOfRank(ModelConfig config, long seed, string biasName, double skew)
    {
        int experts = config.NRoutedExperts, groups = config.NGroup, perGroup = experts / groups;
        double[] byRank = TargetFractions(experts, config.NumExpertsPerTok, skew);
        double budget = GroupBudget * config.TopkGroup;
        var rng = new SplitMix64(SplitMix64.StreamSeed(seed, biasName + "/ranks", 0));
        // Each group's free ids, in a seeded order.
        var free = new List<int>[groups];
        for (int g = 0; g < groups; g++)
        {
            int[] within = Shuffled(perGroup, ref rng);
            free[g] = [.. Array.ConvertAll(within, i => g * perGroup + i)];
        }
        var order = new int[experts];
        double spent = 0;
        int empty = groups;
        var open = new List<int>(groups);
        for (int r = 0; r < experts; r++)
        {
            // The cheapest the groups still empty after this one could cost: opened by the coldest ranks.
            double rest = 0;
            for (int i = 1; i < empty; i++) rest += byRank[experts - i];
            bool mayOpen = empty > 0 && spent + byRank[r] + rest <= budget;
            open.Clear();
            int places = 0;
            for (int g = 0; g < groups; g++)
            {
                if (free[g].Count == 0) continue;
                bool isEmpty = free[g].Count == perGroup;
                if (isEmpty && !mayOpen) continue;
                open.Add(g);
                places += free[g].Count;
            }
            // Every opened group full (a law too steep for the budget): the opener costs the same in any empty group.
            if (places == 0)
                for (int g = 0; g < groups; g++)
                    if (free[g].Count > 0)
                    {
                        open.Add(g);
                        places += free[g].Count;
                    }
            // A uniformly random free place among the allowed groups.
            int pick = (int)(rng.Next() % (ulong)places), chosen = open[0];
            foreach (int g in open)
            {
                if (pick < free[g].Count) { chosen = g; break; }
                pick -= free[g].Count;
            }
            if (free[chosen].Count == perGroup)
            {
                spent += byRank[r];
                empty--;
            }
            order[r] = free[chosen][^1];
            free[chosen].RemoveAt(free[chosen].Count - 1);
        }
        return order;
    }

    /// <summary>The calibrated e_score_correction_bias for the router whose weight is <paramref name="routerWeight"/>.</summary>
    public static float[] CalibrateBias(ModelConfig config, Weight routerWeight, long seed, string biasName, double skew)
    {
        int experts = config.NRoutedExperts, hidden = config.HiddenSize, topK = config.NumExpertsPerTok;
        double[] byRank = TargetFractions(experts, topK, skew);
        int[] ranked = ExpertOfRank(config, seed, biasName, skew);
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
