using System.Runtime.InteropServices;
using Cluster.Engine.Tensors;
using Cluster.ExpertNode.Codec;
using Cluster.Protos.V1;

namespace Cluster.ExpertNode.Tests;

public class RowCodecTests
{
    private static float[] Values(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        // Magnitudes over several decades, both signs, some exact zeros: every rounding regime.
        for (int i = 0; i < n; i++) x[i] = i % 17 == 0 ? 0f : (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-4, 3)));
        return x;
    }

    /// <summary>The float64 value nearest to <paramref name="x"/> among <paramref name="grid"/>, ties to the smaller magnitude step's even code.</summary>
    private static double Nearest(double x, double[] grid)
    {
        double best = double.NaN, bestDiff = double.PositiveInfinity;
        foreach (double g in grid)
        {
            double d = Math.Abs(g - x);
            if (d < bestDiff) (best, bestDiff) = (g, d);
        }
        return best;
    }

    [Fact]
    public void Bf16RowsAreTheNearestBf16Values()
    {
        float[] x = Values(1000, 1);
        var bytes = new byte[x.Length * 2];
        RowCodec.EncodeBf16(x, bytes);
        var back = new float[x.Length];
        RowCodec.DecodeRows(TensorDType.Bf16, bytes, [], 1, x.Length, back);
        for (int i = 0; i < x.Length; i++)
        {
            double err = Math.Abs((double)back[i] - x[i]);
            // Half a unit in the last of bf16's 8 significant bits.
            Assert.True(err <= Math.Abs(x[i]) * Math.Pow(2, -8), $"x={x[i]} decoded {back[i]}");
            // And no other bf16 value is closer: the neighbours one code away.
            ushort code = NumberFormats.FloatToBF16(x[i]);
            foreach (int step in new[] { -1, 1 })
            {
                double neighbour = NumberFormats.BF16ToFloat((ushort)(code + step));
                if (x[i] == 0 || double.IsNaN(neighbour)) continue;
                Assert.True(Math.Abs(neighbour - x[i]) >= err, $"x={x[i]}: {neighbour} is closer than {back[i]}");
            }
        }
    }

    [Theory]
    [InlineData(64)]
    [InlineData(256)]
    [InlineData(300)]
    public void Fp8RowsQuantizeEach128ColumnBlockToItsNearestScaledCode(int hidden)
    {
        double[] grid = NumberFormats.Fp8E4M3ToFloat.Where(float.IsFinite).Select(v => (double)v).Distinct().ToArray();
        int rows = 3, blocks = RowCodec.ScaleBlocks(hidden);
        float[] x = Values(rows * hidden, hidden);
        var bytes = new byte[rows * hidden];
        var scales = new float[rows * blocks];
        for (int r = 0; r < rows; r++)
            RowCodec.EncodeFp8Row(x.AsSpan(r * hidden, hidden), bytes.AsSpan(r * hidden, hidden), scales.AsSpan(r * blocks, blocks));
        var back = new float[x.Length];
        RowCodec.DecodeRows(TensorDType.Fp8E4M3, bytes, MemoryMarshal.AsBytes(scales.AsSpan()), rows, hidden, back);

        for (int r = 0; r < rows; r++)
            for (int b = 0; b < blocks; b++)
            {
                int start = r * hidden + b * 128, len = Math.Min(128, hidden - b * 128);
                double amax = 0;
                for (int i = start; i < start + len; i++) amax = Math.Max(amax, Math.Abs(x[i]));
                float scale = scales[r * blocks + b];
                Assert.Equal(amax / 448, scale, amax * 1e-7);
                for (int i = start; i < start + len; i++)
                {
                    double scaled = x[i] / (double)scale;
                    double expected = Nearest(scaled, grid) * scale;
                    // Equal to the float64 nearest code, up to the float32 rounding of x / scale at a tie.
                    double tol = Math.Abs(scaled) * 1e-6 * scale + 1e-30;
                    double got = back[i];
                    bool tie = Math.Abs(Math.Abs(scaled - Nearest(scaled, grid)) - Math.Abs(scaled - got / scale)) <= Math.Abs(scaled) * 1e-6;
                    Assert.True(Math.Abs(got - expected) <= tol || tie, $"row {r} col {i - r * hidden}: x={x[i]} decoded {got}, nearest {expected}");
                    // E4M3 keeps 3 mantissa bits: half a step is 1/16 of the value, or 2^-10 of the scale when subnormal.
                    Assert.True(Math.Abs(got - x[i]) <= Math.Abs(x[i]) / 16 + scale * Math.Pow(2, -10) * 1.0001, $"x={x[i]} decoded {got}");
                }
                Assert.True(amax == 0 || Math.Abs(back.AsSpan(start, len).ToArray().Max(Math.Abs) - amax) <= amax * 1e-6, "the block's largest value is exact (448 x scale)");
            }
    }

    [Fact]
    public void Fp8AllZeroBlockStaysZeroWithAFiniteScale()
    {
        var x = new float[200];
        x[150] = 3f;
        var bytes = new byte[200];
        var scales = new float[2];
        RowCodec.EncodeFp8Row(x, bytes, scales);
        Assert.Equal(1f, scales[0]);
        var back = new float[200];
        RowCodec.DecodeFp8Row(bytes, scales, back);
        Assert.Equal(x, back);
    }
}
