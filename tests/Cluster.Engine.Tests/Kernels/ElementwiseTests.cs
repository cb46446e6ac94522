using Cluster.Engine.Kernels;

namespace Cluster.Engine.Tests.Kernels;

public class ElementwiseTests
{
    [Fact]
    public void RmsNormMatchesFloat64()
    {
        int d = 77, rows = 3;
        float[] x = MatMulTests.Random(d * rows, 1, 4), w = MatMulTests.Random(d, 2);
        var y = new float[x.Length];
        Norm.Rms(x, w, 1e-6f, y);
        for (int r = 0; r < rows; r++)
        {
            double ms = 0;
            for (int i = 0; i < d; i++) ms += (double)x[r * d + i] * x[r * d + i];
            double inv = 1 / Math.Sqrt(ms / d + 1e-6);
            for (int i = 0; i < d; i++) Assert.Equal(x[r * d + i] * inv * w[i], y[r * d + i], 1e-5);
        }
    }

    [Fact]
    public void SiluMulMatchesFloat64()
    {
        float[] g = MatMulTests.Random(600, 3, 8), u = MatMulTests.Random(600, 4);
        float[] original = (float[])g.Clone();
        Activations.SiluMul(g, u);
        for (int i = 0; i < g.Length; i++)
        {
            double s = original[i] / (1 + Math.Exp(-original[i]));
            Assert.Equal(s * u[i], g[i], 1e-5);
        }
    }

    [Fact]
    public void SoftmaxMatchesFloat64AndSurvivesLargeScores()
    {
        float[] x = MatMulTests.Random(300, 5, 50);
        x[7] = 1000; // would overflow exp without the shift
        float[] original = (float[])x.Clone();
        Activations.Softmax(x);
        double max = original.Max(), z = original.Sum(v => Math.Exp(v - max));
        for (int i = 0; i < x.Length; i++) Assert.Equal(Math.Exp(original[i] - max) / z, x[i], 1e-6);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RopeMatchesFloat64(bool interleaved)
    {
        int h = 8;
        float[] x = MatMulTests.Random(2 * h, 6);
        float[] cos = new float[h], sin = new float[h];
        double[] angle = Enumerable.Range(0, h).Select(j => 0.3 + j * 0.7).ToArray();
        for (int j = 0; j < h; j++) { cos[j] = (float)Math.Cos(angle[j]); sin[j] = (float)Math.Sin(angle[j]); }
        var y = (float[])x.Clone();
        Rope.Apply(y, cos, sin, interleaved);
        for (int j = 0; j < h; j++)
        {
            // The pair (a, b) rotated by angle j: interleaved pairs are (2j, 2j+1), halves are (j, j+h).
            double a = interleaved ? x[2 * j] : x[j], b = interleaved ? x[2 * j + 1] : x[j + h];
            Assert.Equal(a * Math.Cos(angle[j]) - b * Math.Sin(angle[j]), y[j], 1e-6);
            Assert.Equal(b * Math.Cos(angle[j]) + a * Math.Sin(angle[j]), y[j + h], 1e-6);
        }
    }

    [Fact]
    public void TopKSelectsLargestWithLowerIndexOnTies()
    {
        float[] x = [1, 5, 3, 5, -2, 9, 3, 0];
        Span<int> top = stackalloc int[5];
        TopK.Select(x, top);
        Assert.Equal(new[] { 5, 1, 3, 2, 6 }, top.ToArray());
        Assert.Equal(5, TopK.Argmax(x));
        Assert.Equal(1, TopK.Argmax([0, 2, 2]));

        float[] big = MatMulTests.Random(5000, 7);
        var idx = new int[50];
        TopK.Select(big, idx);
        int[] expected = Enumerable.Range(0, big.Length).OrderByDescending(i => big[i]).ThenBy(i => i).Take(50).ToArray();
        Assert.Equal(expected, idx);
    }
}
