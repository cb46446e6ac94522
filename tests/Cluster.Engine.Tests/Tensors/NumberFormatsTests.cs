using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Tensors;

public class NumberFormatsTests
{
    [Theory]
    [InlineData(0x00, 0.0)]
    [InlineData(0x38, 1.0)]
    [InlineData(0x7E, 448.0)]
    [InlineData(0x01, 0.001953125)]  // 2^-9, the smallest subnormal
    [InlineData(0x07, 0.013671875)]  // 7 * 2^-9, the largest subnormal
    [InlineData(0x08, 0.015625)]     // 2^-6, the smallest normal
    [InlineData(0xB8, -1.0)]
    [InlineData(0x40, 2.0)]
    [InlineData(0x3C, 1.5)]
    [InlineData(0x77, 240.0)]
    [InlineData(0xFE, -448.0)]
    public void Fp8_e4m3_decodes_known_values(int code, double value) =>
        Assert.Equal((float)value, NumberFormats.Fp8E4M3ToFloat[code]);

    [Fact]
    public void Fp8_e4m3_has_nan_and_no_infinity()
    {
        Assert.True(float.IsNaN(NumberFormats.Fp8E4M3ToFloat[0x7F]));
        Assert.True(float.IsNaN(NumberFormats.Fp8E4M3ToFloat[0xFF]));
        for (int b = 0; b < 256; b++) Assert.False(float.IsInfinity(NumberFormats.Fp8E4M3ToFloat[b]));
        Assert.True(float.IsNegative(NumberFormats.Fp8E4M3ToFloat[0x80]));
    }

    [Fact]
    public void Every_fp8_code_round_trips()
    {
        for (int b = 0; b < 256; b++)
            if (b is not (0x7F or 0xFF)) Assert.Equal(b, NumberFormats.FloatToFp8E4M3(NumberFormats.Fp8E4M3ToFloat[b]));
        Assert.Equal(0x7F, NumberFormats.FloatToFp8E4M3(float.NaN));
    }

    [Theory]
    [InlineData(1.0625, 0x38)]       // halfway between 1 (mantissa 0, even) and 1.125: to even
    [InlineData(1.1875, 0x3A)]       // halfway between 1.125 (odd) and 1.25 (even): to even
    [InlineData(1.0626, 0x39)]       // just above halfway: up
    [InlineData(0.0009765625, 0x00)] // 2^-10, halfway between 0 and the smallest subnormal: to even (0)
    [InlineData(0.0029296875, 0x02)] // 1.5 * 2^-9: halfway between subnormals 1 and 2: to even (2)
    [InlineData(0.0146484375, 0x08)] // halfway between the largest subnormal (7) and the smallest normal (8)
    [InlineData(460.0, 0x7E)]        // above the largest finite value: saturates
    [InlineData(1e30, 0x7E)]
    [InlineData(double.PositiveInfinity, 0x7E)]
    [InlineData(-1e30, 0xFE)]
    [InlineData(-0.0, 0x80)]
    public void Fp8_e4m3_rounds_to_nearest_even_and_saturates(double x, int code) =>
        Assert.Equal(code, NumberFormats.FloatToFp8E4M3((float)x));

    [Fact]
    public void Fp8_e4m3_encoding_picks_the_nearest_code_for_random_values()
    {
        var rng = new SplitMix64(42);
        for (int i = 0; i < 200_000; i++)
        {
            // Log-uniform magnitudes from below the subnormals to beyond the saturation point.
            float x = MathF.Pow(2, rng.NextSigned() * 14 - 2) * (rng.Next() % 2 == 0 ? 1 : -1);
            Assert.Equal(Reference(x), NumberFormats.FloatToFp8E4M3(x));
        }
    }

    /// <summary>Nearest code by exhaustive search, ties to the even code, saturating at 448.</summary>
    private static byte Reference(float x)
    {
        float a = MathF.Min(MathF.Abs(x), 448f);
        int best = 0;
        for (int c = 1; c <= 0x7E; c++)
        {
            float d = MathF.Abs(NumberFormats.Fp8E4M3ToFloat[c] - a), bestD = MathF.Abs(NumberFormats.Fp8E4M3ToFloat[best] - a);
            if (d < bestD || (d == bestD && c % 2 == 0)) best = c;
        }
        return (byte)(best | (float.IsNegative(x) ? 0x80 : 0));
    }

    [Theory]
    [InlineData(0x3F800000u, (ushort)0x3F80)] // 1.0
    [InlineData(0x3F808000u, (ushort)0x3F80)] // halfway, lower is even: down
    [InlineData(0x3F818000u, (ushort)0x3F82)] // halfway, lower is odd: up
    [InlineData(0x3F808001u, (ushort)0x3F81)] // above halfway: up
    [InlineData(0x7F7FFFFFu, (ushort)0x7F80)] // float max rounds to infinity, as torch does
    [InlineData(0xBF800000u, (ushort)0xBF80)] // -1.0
    public void Bf16_rounds_to_nearest_even(uint bits, ushort expected) =>
        Assert.Equal(expected, NumberFormats.FloatToBF16(BitConverter.UInt32BitsToSingle(bits)));

    [Fact]
    public void Bf16_keeps_nan_and_round_trips_its_own_values()
    {
        Assert.True(float.IsNaN(NumberFormats.BF16ToFloat(NumberFormats.FloatToBF16(float.NaN))));
        for (int b = 0; b < 0x10000; b += 7)
        {
            float f = NumberFormats.BF16ToFloat((ushort)b);
            if (!float.IsNaN(f)) Assert.Equal((ushort)b, NumberFormats.FloatToBF16(f));
        }
    }

    [Fact]
    public void Fp8_weight_from_floats_uses_128_blocks_with_partial_edges()
    {
        int rows = 130, cols = 260;
        var values = new float[rows * cols];
        var rng = new SplitMix64(1);
        for (int i = 0; i < values.Length; i++) values[i] = rng.NextSigned() * (i % cols < 128 ? 1 : 100);
        Weight w = Weight.FromFloats("w", [rows, cols], values, DType.F8E4M3);
        Assert.Equal([2, 3], w.ScaleInv!.Shape);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            w.DequantizeRow(r, row);
            for (int c = 0; c < cols; c++)
            {
                float x = values[r * cols + c];
                float blockMax = c < 128 ? 1 : 100;
                Assert.True(MathF.Abs(row[c] - x) <= MathF.Abs(x) / 16 + blockMax / 448 * MathF.Pow(2, -10), $"[{r},{c}] {row[c]} vs {x}");
            }
        }
    }
}
