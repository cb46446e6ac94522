using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Model;

public class ExpertsTests
{
    private const int Layer = 1;

    private static float[] Rows(int n, int hidden) => Kernels.MatMulTests.Random(n * hidden, 21);

    [Fact]
    public void SplitGateThenExpertsEqualsTheFusedLayer()
    {
        var config = TinyModel.Config(DType.BF16);
        var moe = Moe.Load(TinyModel.Weights(DType.BF16), config, Layer);
        int n = 5, k = config.NumExpertsPerTok, hidden = config.HiddenSize;
        float[] x = Rows(n, hidden);
        var fused = new float[n * hidden];
        moe.Forward(x, n, fused);

        int[] ids = new int[n * k];
        float[] weights = new float[n * k];
        moe.Gate.Route(x, n, ids, weights);
        var split = new float[n * hidden];
        moe.Experts.Run(x, n, ids, weights, split);
        var shared = new float[n * hidden];
        moe.Shared!.Forward(x, n, shared);
        for (int i = 0; i < split.Length; i++) split[i] += shared[i];
        Assert.Equal(fused, split);
        Assert.True(ids.Distinct().Count() > k, "tokens should not all pick the same experts");
    }

    [Fact]
    public void RunEqualsPerRowWeightedSumOfExperts()
    {
        var config = TinyModel.Config(DType.BF16);
        var source = TinyModel.Weights(DType.BF16);
        var experts = RoutedExperts.Load(source, config, Layer);
        int n = 3, hidden = config.HiddenSize;
        float[] x = Rows(n, hidden);
        int[] ids = [4, 9, 4, 31, -1, 0];
        float[] weights = [0.5f, 1.5f, 2f, 0.25f, 99f, 1f];
        var output = new float[n * hidden];
        experts.Run(x, n, ids, weights, output);
        for (int r = 0; r < n; r++)
        {
            var expected = new double[hidden];
            for (int j = 0; j < 2; j++)
            {
                int e = ids[r * 2 + j];
                if (e < 0) continue;
                var y = new float[hidden];
                Mlp.Load(source, $"model.layers.{Layer}.mlp.experts.{e}", hidden, config.MoeIntermediateSize).Forward(x.AsSpan(r * hidden, hidden), 1, y);
                for (int i = 0; i < hidden; i++) expected[i] += weights[r * 2 + j] * y[i];
            }
            for (int i = 0; i < hidden; i++) Assert.Equal(expected[i], output[r * hidden + i], 1e-5);
        }
    }

    [Fact]
    public void PartialSumsFromTwoHostsAddUpToAllExperts()
    {
        var config = TinyModel.Config(DType.BF16);
        var source = TinyModel.Weights(DType.BF16);
        int n = 4, k = config.NumExpertsPerTok, hidden = config.HiddenSize, half = config.NRoutedExperts / 2;
        var all = RoutedExperts.Load(source, config, Layer);
        var low = RoutedExperts.Load(source, config, Layer, Enumerable.Range(0, half));
        var high = RoutedExperts.Load(source, config, Layer, Enumerable.Range(half, half));
        float[] x = Rows(n, hidden);
        int[] ids = new int[n * k];
        float[] weights = new float[n * k];
        Moe.Load(source, config, Layer).Gate.Route(x, n, ids, weights);

        var expected = new float[n * hidden];
        all.Run(x, n, ids, weights, expected);
        var sum = new float[n * hidden];
        foreach (var (host, keep) in new[] { (low, (Func<int, bool>)(e => e < half)), (high, e => e >= half) })
        {
            int[] mine = ids.Select(e => keep(e) ? e : -1).ToArray();
            var part = new float[n * hidden];
            host.Run(x, n, mine, weights, part);
            for (int i = 0; i < sum.Length; i++) sum[i] += part[i];
        }
        for (int i = 0; i < sum.Length; i++) Assert.Equal(expected[i], sum[i], 1e-5);

        var e = Assert.Throws<InvalidOperationException>(() => low.Run(x, n, ids, weights, new float[n * hidden]));
        Assert.Contains("is not loaded here", e.Message);
    }
}
