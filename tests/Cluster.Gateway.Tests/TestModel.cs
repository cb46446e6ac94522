using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;
using Cluster.Tests;

namespace Cluster.Gateway.Tests;

/// <summary>
/// A model directory for the API tests: the tiny preset's shapes with the real tokenizer's 129280-id vocabulary, so
/// that chat templates and text prompts are valid input, while every step stays about a millisecond. Written once per
/// test process (a second or two) and removed when it exits, so it always matches the engine being tested.
/// </summary>
public static class TestModel
{
    private const int Seed = 7;
    private static readonly Lazy<string> s_dir = new(Create);
    private static readonly Lazy<ServedModel> s_served = new(() => ServedModel.Load(Dir, "tiny-test", ClusterFixture.MaxModelLen));

    public static string Dir => s_dir.Value;

    /// <summary>The model as a gateway serves it, for tokenizing in tests.</summary>
    public static ServedModel Served => s_served.Value;

    public static ModelConfig Config { get; } = SyntheticModel.ConfigFor(SyntheticPresets.Tiny with { VocabSize = SyntheticPresets.Small.VocabSize }, DType.BF16);

    public static string TokenizerDir => Path.Combine(Repo.NodeModules, "@lenml", "tokenizer-deepseek_v3", "models");

    private static string Create()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"cluster-gateway-tests-{Environment.ProcessId}");
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        CheckpointWriter.Write(dir, Config, SyntheticModel.Plan(Config, Seed, DType.BF16), SyntheticModel.ShardCount(Config, DType.BF16));
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(TokenizerDir, f), Path.Combine(dir, f));
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
        };
        return dir;
    }
}
