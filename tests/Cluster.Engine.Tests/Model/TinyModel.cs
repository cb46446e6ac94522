using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Model;

/// <summary>The tiny synthetic preset, generated once per test run in each weight format.</summary>
internal static class TinyModel
{
    public const int Seed = 7;

    private static readonly Lazy<InMemoryTensorSource> s_bf16 = new(() => Create(SyntheticPresets.Tiny, DType.BF16));
    private static readonly Lazy<InMemoryTensorSource> s_fp8 = new(() => Create(SyntheticPresets.Tiny, DType.F8E4M3));

    public static ModelConfig Config(DType dtype) => SyntheticModel.ConfigFor(SyntheticPresets.Tiny, dtype);

    public static ITensorSource Weights(DType dtype) => dtype == DType.F8E4M3 ? s_fp8.Value : s_bf16.Value;

    public static InMemoryTensorSource Create(ModelConfig preset, DType dtype) =>
        SyntheticModel.CreateWeights(SyntheticModel.ConfigFor(preset, dtype), Seed, dtype);

    public static Transformer Load(DType dtype = DType.BF16) => Transformer.Load(Config(dtype), Weights(dtype));

    /// <summary>Largest absolute difference over the largest absolute reference value.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, scale = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            Assert.True(float.IsFinite(actual[i]), $"non-finite value at {i}");
            diff = Math.Max(diff, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }
        Assert.True(scale > 0, "reference is all zeros");
        return diff / scale;
    }

    public static readonly int[] Tokens = [0, 15, 27, 3, 999, 512, 64, 7, 1023, 200];
}
