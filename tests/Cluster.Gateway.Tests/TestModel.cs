using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;
using Cluster.Tests;

namespace Cluster.Gateway.Tests;

/// <summary>
/// A model directory for the API tests: the tiny preset's shapes with the real tokenizer's 129280-id vocabulary, so
/// that chat templates and text prompts are valid input, while every step stays about a millisecond. Written once per
/// machine (and per version of this recipe) and reused.
/// </summary>
public static class TestModel
{
    private const int Seed = 7;
    private static readonly Lazy<string> s_dir = new(Create);

    public static string Dir => s_dir.Value;

    public static ModelConfig Config { get; } = SyntheticModel.ConfigFor(SyntheticPresets.Tiny with { VocabSize = SyntheticPresets.Small.VocabSize }, DType.BF16);

    public static string TokenizerDir => Path.Combine(Repo.NodeModules, "@lenml", "tokenizer-deepseek_v3", "models");

    private static string Create()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"cluster-gateway-tests-model-v1-seed{Seed}");
        if (File.Exists(Path.Combine(dir, "done"))) return dir;
        string staging = dir + "." + Environment.ProcessId;
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        CheckpointWriter.Write(staging, Config, SyntheticModel.Plan(Config, Seed, DType.BF16), SyntheticModel.ShardCount(Config, DType.BF16));
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(TokenizerDir, f), Path.Combine(staging, f));
        File.WriteAllText(Path.Combine(staging, "done"), "");
        try { Directory.Move(staging, dir); }
        catch (IOException) when (File.Exists(Path.Combine(dir, "done"))) { Directory.Delete(staging, recursive: true); } // another process won
        return dir;
    }
}
