using Cluster.Engine.Backend;
using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Synthetic;

/// <summary>The synthetic initialisation keeps activations at O(1) through the layers and makes the router's choices vary.</summary>
public class SyntheticActivationsTests
{
    private static readonly ModelConfig C = SyntheticPresets.Tiny;
    private static readonly InMemoryTensorSource W = SyntheticModel.CreateWeights(C, 3, DType.BF16);

    private static int[] Tokens(int n)
    {
        var rng = new SplitMix64(99);
        var t = new int[n];
        for (int i = 0; i < n; i++) t[i] = (int)(rng.Next() % (ulong)C.VocabSize);
        return t;
    }

    private static double Rms(ReadOnlySpan<float> x)
    {
        double s = 0;
        foreach (float v in x) s += (double)v * v;
        return Math.Sqrt(s / x.Length);
    }

    [Fact]
    public void Hidden_states_stay_well_scaled_and_logits_are_spread()
    {
        int n = 48, h = C.HiddenSize;
        int[] tokens = Tokens(n);
        var model = Transformer.Load(C, W);
        var hidden = new float[n * h];
        Weight embed = W.Get("model.embed_tokens.weight");
        for (int i = 0; i < n; i++) embed.DequantizeRow(tokens[i], hidden.AsSpan(i * h, h));
        var cache = new SequenceCache(C);
        cache.Reserve(n);
        var batch = new TokenBatch();
        for (int i = 0; i < n; i++) batch.Add(cache, i);
        ForwardBatch prepared = batch.Prepare(tokens, out ILatentMemory memory);
        foreach (DecoderLayer layer in model.Layers)
        {
            layer.Forward(hidden, prepared, memory, AttentionPath.Naive);
            for (int i = 0; i < n; i++)
                Assert.InRange(Rms(hidden.AsSpan(i * h, h)), 0.5, 8);
        }

        var logits = new float[n * C.VocabSize];
        model.Prefill(tokens, new SequenceCache(C), AttentionPath.Naive, logits);
        for (int i = 0; i < n; i++)
        {
            ReadOnlySpan<float> row = logits.AsSpan(i * C.VocabSize, C.VocabSize);
            double mean = 0;
            foreach (float v in row) { Assert.True(float.IsFinite(v)); mean += v; }
            mean /= row.Length;
            double var = 0;
            foreach (float v in row) var += (v - mean) * (v - mean);
            Assert.InRange(Math.Sqrt(var / row.Length), 0.3, 5);
        }
    }

    [Fact]
    public void Router_choices_vary_across_tokens_and_the_bias_changes_some()
    {
        int n = 64, h = C.HiddenSize, k = C.NumExpertsPerTok;
        int[] tokens = Tokens(n);
        var x = new float[n * h];
        Weight embed = W.Get("model.embed_tokens.weight");
        var ones = new float[h];
        Array.Fill(ones, 1f);
        for (int i = 0; i < n; i++)
        {
            embed.DequantizeRow(tokens[i], x.AsSpan(i * h, h));
            Norm.Rms(x.AsSpan(i * h, h), ones, (float)C.RmsNormEps, x.AsSpan(i * h, h));
        }
        string p = "model.layers.1.mlp.gate";
        Weight gateWeight = W.Get(p + ".weight");
        var bias = new float[C.NRoutedExperts];
        W.Get(p + ".e_score_correction_bias").DequantizeRow(0, bias);
        Assert.Contains(bias, b => b != 0);

        var ids = new int[n * k];
        var weights = new float[n * k];
        new Gate(gateWeight, bias, C).Route(x, n, ids, weights);
        var used = new HashSet<int>(ids);
        var sets = new HashSet<string>();
        for (int i = 0; i < n; i++) sets.Add(string.Join(",", ids.AsSpan(i * k, k).ToArray().Order()));
        Assert.True(used.Count >= C.NRoutedExperts * 3 / 4, $"only {used.Count} of {C.NRoutedExperts} experts chosen");
        Assert.True(sets.Count >= n * 3 / 4, $"only {sets.Count} distinct expert sets for {n} tokens");

        var unbiased = new int[n * k];
        new Gate(gateWeight, new float[C.NRoutedExperts], C).Route(x, n, unbiased, weights);
        int changed = 0;
        for (int i = 0; i < n; i++)
            if (!ids.AsSpan(i * k, k).ToArray().Order().SequenceEqual(unbiased.AsSpan(i * k, k).ToArray().Order())) changed++;
        Assert.InRange(changed, 1, n - 1);
    }
}
