using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;
using Cluster.Tests;

namespace Cluster.Gateway.Tests;

/// <summary>
/// A model directory for the API tests: the tiny preset's shapes with the real tokenizer's 129280-id vocabulary, so
/// that chat templates and text prompts are valid input, while every step stays about a millisecond. Written once per
/// test process (a second or two) by <see cref="TestCheckpoints"/>.
/// </summary>
public static class TestModel
{
    private const int Seed = 7;
    private static readonly Lazy<ServedModel> s_served = new(() => ServedModel.Load(Dir, "tiny-test", ClusterFixture.MaxModelLen));

    public static string Dir => TestCheckpoints.Dir(Config, Seed, tokenizer: true);

    /// <summary>The model as a gateway serves it, for tokenizing in tests.</summary>
    public static ServedModel Served => s_served.Value;

    public static ModelConfig Config { get; } = SyntheticModel.ConfigFor(SyntheticPresets.Tiny with { VocabSize = SyntheticPresets.Small.VocabSize }, DType.BF16);

    public static string TokenizerDir => TestCheckpoints.TokenizerDir;
}
