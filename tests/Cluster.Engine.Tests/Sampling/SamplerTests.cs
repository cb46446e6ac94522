using Cluster.Engine.Sampling;

namespace Cluster.Engine.Tests.Sampling;

public class SamplerTests
{
    private static readonly float[] Logits = [1.0f, 3.0f, 2.5f, -1f, 0.5f, 2.9f, -4f, 0f];

    private static int[] Draw(SamplingOptions options, int n, float[]? logits = null)
    {
        logits ??= Logits;
        var sampler = new Sampler(options, logits.Length);
        var ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = sampler.Sample(logits).Id;
        return ids;
    }

    [Fact]
    public void GreedyTakesTheArgmax()
    {
        Assert.All(Draw(new SamplingOptions(), 5), id => Assert.Equal(1, id));
    }

    [Fact]
    public void SameSeedSameTokensDifferentSeedDifferentTokens()
    {
        var a = Draw(new SamplingOptions(Temperature: 1, Seed: 42), 200);
        var b = Draw(new SamplingOptions(Temperature: 1, Seed: 42), 200);
        var c = Draw(new SamplingOptions(Temperature: 1, Seed: 43), 200);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void TemperatureSamplingFollowsTheSoftmax()
    {
        const int n = 40000;
        double t = 0.7;
        int[] ids = Draw(new SamplingOptions(Temperature: t, Seed: 1), n);
        double z = Logits.Sum(l => Math.Exp(l / t));
        for (int v = 0; v < Logits.Length; v++)
        {
            double p = Math.Exp(Logits[v] / t) / z;
            double observed = ids.Count(id => id == v) / (double)n;
            // Five standard deviations of a binomial frequency.
            Assert.InRange(observed, p - 5 * Math.Sqrt(p * (1 - p) / n) - 1e-9, p + 5 * Math.Sqrt(p * (1 - p) / n) + 1e-9);
        }
    }

    [Fact]
    public void TopKKeepsOnlyTheKBest()
    {
        int[] ids = Draw(new SamplingOptions(Temperature: 5, TopK: 3, Seed: 2), 3000);
        Assert.Equal(new[] { 1, 2, 5 }, ids.Distinct().OrderBy(i => i).ToArray());
    }

    [Fact]
    public void TopPKeepsTheSmallestNucleus()
    {
        // Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 needs the first two, 0.85 the first three.
        float[] logits = [MathF.Log(0.3f), MathF.Log(0.05f), MathF.Log(0.5f), MathF.Log(0.15f)];
        Assert.Equal(new[] { 0, 2 }, Draw(new SamplingOptions(Temperature: 1, TopP: 0.75, Seed: 3), 2000, logits).Distinct().Order().ToArray());
        Assert.Equal(new[] { 0, 2, 3 }, Draw(new SamplingOptions(Temperature: 1, TopP: 0.85, Seed: 3), 2000, logits).Distinct().Order().ToArray());
        Assert.Equal(new[] { 0, 2 }, Draw(new SamplingOptions(Temperature: 1, TopP: 0.75, TopK: 3, Seed: 3), 2000, logits).Distinct().Order().ToArray());
        Assert.All(Draw(new SamplingOptions(Temperature: 1, TopP: 0.01, Seed: 3), 50, logits), id => Assert.Equal(2, id));
    }

    [Fact]
    public void WideNucleusIsExact()
    {
        // 1000 tokens with slowly falling logits: top_p 0.9 needs hundreds of candidates, more than the first ranking.
        float[] logits = Enumerable.Range(0, 1000).Select(i => -0.002f * ((i * 7919) % 1000)).ToArray();
        double t = 1, topP = 0.9;
        int[] ranked = Enumerable.Range(0, 1000).OrderByDescending(i => logits[i]).ThenBy(i => i).ToArray();
        double z = logits.Sum(l => Math.Exp(l / t)), cum = 0;
        int nucleus = 0;
        while (cum < topP * z) cum += Math.Exp(logits[ranked[nucleus++]] / t);
        Assert.InRange(nucleus, 500, 999);
        var allowed = ranked.Take(nucleus).ToHashSet();
        int[] ids = Draw(new SamplingOptions(Temperature: t, TopP: topP, Seed: 9), 5000, logits);
        Assert.All(ids, id => Assert.Contains(id, allowed));
        Assert.True(ids.Distinct().Count() > nucleus * 9 / 10, "samples should cover most of the nucleus");
    }

    [Fact]
    public void LogprobsAreLogSoftmaxOfTheRawLogits()
    {
        var sampler = new Sampler(new SamplingOptions(Temperature: 0.5, TopLogprobs: 3, Seed: 4), Logits.Length);
        SampledToken s = sampler.Sample(Logits);
        double logZ = Math.Log(Logits.Sum(l => Math.Exp(l)));
        Assert.Equal(Logits[s.Id] - logZ, s.Logprob, 1e-5);
        Assert.Equal(new[] { 1, 5, 2 }, s.TopLogprobs.Select(t => t.Id).ToArray());
        foreach (TokenLogprob t in s.TopLogprobs) Assert.Equal(Logits[t.Id] - logZ, t.Logprob, 1e-5);
    }

    public static TheoryData<double, double, int> SkipOptions => new()
    {
        { 0, 1, 0 }, { 1, 1, 0 }, { 0.7, 0.9, 0 }, { 1.3, 1, 3 }, { 1, 0.6, 4 }, { 1, 0.999, 0 },
    };

    [Theory]
    [MemberData(nameof(SkipOptions))]
    public void SkipDrawAdvancesAsOneSample(double temperature, double topP, int topK)
    {
        // A wide, flat vocabulary so top_p 0.999 takes the bisection path; the first step's logits differ from the rest.
        float[] flat = Enumerable.Range(0, 1000).Select(i => -0.002f * ((i * 7919) % 1000)).ToArray();
        float[] first = flat.Select((v, i) => i % 3 == 0 ? v + 1 : v).ToArray();
        for (ulong seed = 1; seed <= 8; seed++)
        {
            var options = new SamplingOptions(Temperature: temperature, TopP: topP, TopK: topK, Seed: seed);
            Sampler sampled = new(options, flat.Length), skipped = new(options, flat.Length);
            sampled.Sample(first);
            skipped.SkipDraw();
            for (int step = 0; step < 3; step++) Assert.Equal(sampled.Sample(flat).Id, skipped.Sample(flat).Id);
        }
    }

    [Fact]
    public void SkipDrawMovesTheGenerator()
    {
        float[] flat = Enumerable.Range(0, 1000).Select(i => -0.001f * i).ToArray();
        var options = new SamplingOptions(Temperature: 1, Seed: 5);
        Sampler plain = new(options, flat.Length), skipped = new(options, flat.Length);
        skipped.SkipDraw();
        int[] a = Enumerable.Range(0, 20).Select(_ => plain.Sample(flat).Id).ToArray();
        int[] b = Enumerable.Range(0, 20).Select(_ => skipped.Sample(flat).Id).ToArray();
        Assert.NotEqual(a, b);
        Assert.Equal(a[1..], b[..^1]);
    }

    [Fact]
    public void InvalidOptionsAreRejectedWithTheirValue()
    {
        Assert.Contains("temperature", Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions(Temperature: -1), 8)).Message);
        Assert.Contains("top_p", Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions(TopP: 0), 8)).Message);
        Assert.Contains("top_k", Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions(TopK: -2), 8)).Message);
    }
}
