using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;
using Xunit.Abstractions;

namespace Cluster.Engine.Tests.Synthetic;

public class ExpertSkewTests(ITestOutputHelper output)
{
    /// <summary>Least-squares slope of log(fraction) over log(rank), over the ranks whose target is below 0.8 (the head saturates at 1).</summary>
    private static double Slope(long[] counts, double[] target)
    {
        long[] sorted = counts.OrderDescending().ToArray();
        double total = counts.Sum() / 8.0; // tokens: 8 choices each
        var xs = new List<double>();
        var ys = new List<double>();
        for (int r = 0; r < sorted.Length; r++)
        {
            if (target[r] >= 0.8 || sorted[r] == 0) continue;
            xs.Add(Math.Log(r + 1));
            ys.Add(Math.Log(sorted[r] / total));
        }
        double mx = xs.Average(), my = ys.Average(), sxy = 0, sxx = 0;
        for (int i = 0; i < xs.Count; i++) { sxy += (xs[i] - mx) * (ys[i] - my); sxx += (xs[i] - mx) * (xs[i] - mx); }
        return sxy / sxx;
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(1.0)]
    [InlineData(1.2)]
    public void Targets_sum_to_top_k_saturate_at_one_and_fall_as_a_power_of_the_rank(double skew)
    {
        double[] t = ExpertSkew.TargetFractions(64, 8, skew);
        Assert.Equal(8, t.Sum(), 6);
        Assert.All(t, f => Assert.InRange(f, 0, 1));
        for (int r = 1; r < t.Length; r++)
        {
            Assert.True(t[r] <= t[r - 1]);
            if (t[r - 1] < 1) Assert.Equal(-skew, Math.Log(t[r] / t[r - 1]) / Math.Log((r + 1.0) / r), 6);
        }
    }

    [Theory]
    [InlineData("tiny", 0.8)]
    [InlineData("tiny", 1.2)]
    [InlineData("small", 1.2)]
    public void The_router_on_fresh_random_rows_follows_the_law(string preset, double skew)
    {
        ModelConfig config = SyntheticPresets.ByName(preset);
        const string name = "model.layers.1.mlp.gate.e_score_correction_bias";
        Weight router = SyntheticModel.Generate(new TensorSpec("model.layers.1.mlp.gate.weight", [config.NRoutedExperts, config.HiddenSize], DType.BF16, TensorRole.Router, false), 5);
        float[] bias = ExpertSkew.CalibrateBias(config, router, seed: 5, name, skew);
        var gate = new Gate(router, bias, config);

        // Rows the calibration never saw.
        const int n = 8192;
        var rows = new float[n * config.HiddenSize];
        var rng = new SplitMix64(12345);
        for (int i = 0; i < rows.Length; i++) rows[i] = MathF.Sqrt(3f) * rng.NextSigned();
        var ids = new int[n * 8];
        gate.Route(rows, n, ids, new float[n * 8]);
        var counts = new long[config.NRoutedExperts];
        foreach (int e in ids) counts[e]++;

        double[] target = ExpertSkew.TargetFractions(config.NRoutedExperts, 8, skew);
        double slope = Slope(counts, target);
        output.WriteLine($"{preset} skew {skew}: slope {slope:F3}");
        Assert.InRange(slope, -skew - 0.15, -skew + 0.15);
        // The ranks are the seeded ones: the most popular expert is rank 1's.
        int[] ranked = ExpertSkew.ExpertOfRank(config, 5, name, skew);
        Assert.True(counts[ranked[0]] >= counts.Max() * 0.95, "rank 1 is among the most chosen");
        Assert.InRange(counts[ranked[0]] / (double)n, 0.9, 1.0);
    }

    [Theory]
    [InlineData("tiny")]
    [InlineData("small")]
    public void Ranks_sit_at_arbitrary_ids_while_the_groups_hottest_fractions_fit_group_limited_routing(string preset)
    {
        const double skew = 1.2;
        ModelConfig config = SyntheticPresets.ByName(preset);
        double[] byRank = ExpertSkew.TargetFractions(config.NRoutedExperts, config.NumExpertsPerTok, skew);
        int perGroup = config.NRoutedExperts / config.NGroup, spread = 0, layers = 20;
        for (int layer = 1; layer <= layers; layer++)
        {
            int[] ranked = ExpertSkew.ExpertOfRank(config, 5, $"model.layers.{layer}.mlp.gate.e_score_correction_bias", skew);
            Assert.Equal(Enumerable.Range(0, config.NRoutedExperts), ranked.Order());
            // A token reaches topk_group groups, so each group costs its hottest expert's fraction of them.
            var hottest = new double[config.NGroup];
            for (int r = 0; r < ranked.Length; r++) hottest[ranked[r] / perGroup] = Math.Max(hottest[ranked[r] / perGroup], byRank[r]);
            Assert.True(hottest.Sum() <= config.TopkGroup, $"layer {layer}: the groups' hottest fractions sum to {hottest.Sum():F3} of {config.TopkGroup} groups per token");
            int groups = ranked.Take(config.NumExpertsPerTok).Select(e => e / perGroup).Distinct().Count();
            if (groups > 1) spread++;
            output.WriteLine($"layer {layer}: hottest fractions per group sum {hottest.Sum():F3}; the {config.NumExpertsPerTok} hottest experts {string.Join(",", ranked.Take(config.NumExpertsPerTok))} in {groups} groups");
        }
        // Where the budget leaves room (four groups per token of eight), the hot experts are not kept in one group.
        if (preset == "small")
        {
            Assert.True(spread >= layers / 2, $"the hottest experts spread over groups in only {spread} of {layers} layers");
            Assert.True(Enumerable.Range(1, layers).All(l =>
                Enumerable.Range(1, layers).Count(m => ExpertSkew.ExpertOfRank(config, 5, $"model.layers.{m}.mlp.gate.e_score_correction_bias", skew)[0]
                    == ExpertSkew.ExpertOfRank(config, 5, $"model.layers.{l}.mlp.gate.e_score_correction_bias", skew)[0]) < layers / 2));
        }
    }

    [Fact]
    public void A_whole_tiny_model_over_random_tokens_is_skewed_by_the_law_and_skew_zero_changes_nothing()
    {
        const double skew = 1.2;
        ModelConfig config = SyntheticPresets.Tiny;
        var skewed = SyntheticModel.CreateWeights(config, 3, DType.BF16, expertSkew: skew);
        var plain = SyntheticModel.CreateWeights(config, 3, DType.BF16);
        var zero = SyntheticModel.CreateWeights(config, 3, DType.BF16, expertSkew: 0);
        foreach (string n in plain.Names)
            Assert.True(plain.Get(n).Bytes.SequenceEqual(zero.Get(n).Bytes), n);
        // Only the router biases differ.
        foreach (string n in plain.Names)
            Assert.Equal(!n.EndsWith("e_score_correction_bias"), plain.Get(n).Bytes.SequenceEqual(skewed.Get(n).Bytes));

        var counts = new long[config.NumHiddenLayers][];
        for (int l = 0; l < counts.Length; l++) counts[l] = new long[config.NRoutedExperts];
        var model = Transformer.Load(config, skewed, routedExperts: l => new ExpertLoadCounter(RoutedExperts.Load(skewed, config, l), counts[l]));
        var rng = new SplitMix64(99);
        var logits = new float[config.VocabSize];
        for (int s = 0; s < 16; s++)
        {
            var tokens = new int[64];
            for (int i = 0; i < tokens.Length; i++) tokens[i] = 2 + (int)(rng.Next() % (ulong)(config.VocabSize - 2));
            model.Prefill(tokens, new SequenceCache(config), AttentionPath.Absorbed, logits, lastRowOnly: true);
        }
        double[] target = ExpertSkew.TargetFractions(config.NRoutedExperts, 8, skew);
        for (int l = config.FirstKDenseReplace; l < config.NumHiddenLayers; l++)
        {
            // Real hidden states are not the calibration's random rows, so the law holds more loosely.
            double slope = Slope(counts[l], target);
            long[] sorted = counts[l].OrderDescending().ToArray();
            output.WriteLine($"layer {l}: slope {slope:F3}, hottest {sorted[0]}, coldest {sorted[^1]} of {64 * 16} tokens");
            Assert.InRange(slope, -skew - 0.4, -skew + 0.4);
            Assert.True(sorted[0] > 8 * sorted[^1], $"layer {l}: hottest {sorted[0]}, coldest {sorted[^1]}");
        }
    }
}
