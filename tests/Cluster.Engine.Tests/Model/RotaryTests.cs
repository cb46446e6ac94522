using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.Engine.Synthetic;

namespace Cluster.Engine.Tests.Model;

public class RotaryTests
{
    private static readonly ModelConfig Yarn = SyntheticPresets.Tiny with
    {
        QkRopeHeadDim = 64,
        RopeTheta = 10000,
        RopeScaling = new YarnScaling(Factor: 40, OriginalMaxPositionEmbeddings: 4096, BetaFast: 32, BetaSlow: 1, MScale: 0.707, MScaleAllDim: 1),
    };

    [Fact]
    public void YarnFrequenciesAndAttentionFactorMatchClosedForm()
    {
        var (inv, att) = Rotary.Frequencies(Yarn);
        var (expectedInv, expectedAtt) = ReferenceRope.Frequencies(Yarn);
        for (int j = 0; j < inv.Length; j++) Assert.Equal(expectedInv[j], inv[j], expectedInv[j] * 1e-12);
        Assert.Equal(expectedAtt, att, 1e-12);
        // Sanity of the closed form: (0.1·0.707·ln40 + 1) / (0.1·ln40 + 1), the fastest pair untouched, the slowest divided by 40.
        Assert.Equal((0.1 * 0.707 * Math.Log(40) + 1) / (0.1 * Math.Log(40) + 1), att, 1e-12);
        Assert.Equal(1.0, inv[0], 1e-15);
        Assert.Equal(Math.Pow(10000, -62.0 / 64) / 40, inv[^1], 1e-15);
    }

    [Fact]
    public void PlainRopeHasNoScaling()
    {
        var plain = Yarn with { RopeScaling = null };
        var (inv, att) = Rotary.Frequencies(plain);
        Assert.Equal(1.0, att);
        for (int j = 0; j < inv.Length; j++) Assert.Equal(Math.Pow(10000, -2.0 * j / 64), inv[j], 1e-15);
        Assert.Equal(1 / Math.Sqrt(plain.QkHeadDim), plain.SoftmaxScale, 1e-15);
    }

    [Fact]
    public void SoftmaxScaleCarriesMscaleAllDimSquared()
    {
        double m = 0.1 * 1 * Math.Log(40) + 1;
        Assert.Equal(m * m / Math.Sqrt(Yarn.QkHeadDim), Yarn.SoftmaxScale, 1e-12);
    }

    [Theory]
    [InlineData(true, 0)]
    [InlineData(true, 7)]
    [InlineData(false, 123)]
    [InlineData(true, 4000)]
    public void ApplyMatchesHuggingFaceFormula(bool interleave, int position)
    {
        var config = Yarn with { RopeInterleave = interleave };
        var rotary = new Rotary(config);
        var (inv, att) = ReferenceRope.Frequencies(config);
        float[] x = Kernels.MatMulTests.Random(64, position + 1);
        float[] cos = new float[32], sin = new float[32];
        rotary.Angles(position, cos, sin);
        var y = (float[])x.Clone();
        rotary.Apply(y, cos, sin);
        double[] expected = ReferenceRope.Apply(x.Select(v => (double)v).ToArray(), position, inv, att, interleave);
        // float32 angles (as HF computes them) lose about position·2^-24 radians.
        double tolerance = 1e-6 + position * 3e-7;
        for (int i = 0; i < 64; i++) Assert.Equal(expected[i], y[i], tolerance);
    }
}
