using System.Collections.Concurrent;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Tests;

/// <summary>
/// Synthetic checkpoints on disk, in exactly the format `cluster model init` writes, each written once per test
/// process (by config.json, seed, weight format and tokenizer) and removed when the process exits, so tests always read what the
/// engine under test writes. With <c>tokenizer</c> the real DeepSeek-V3 tokenizer's files are copied in (the model's
/// vocabulary must then be the tokenizer's, as the small preset's is).
/// </summary>
public static class TestCheckpoints
{
    private static readonly ConcurrentDictionary<(string, int, DType, bool), Lazy<string>> s_written = new();

    public static string TokenizerDir => Path.Combine(Repo.NodeModules, "@lenml", "tokenizer-deepseek_v3", "models");

    /// <summary>The directory of the checkpoint of <paramref name="config"/> (a preset's config, as <see cref="SyntheticModel.ConfigFor"/> gives).</summary>
    public static string Dir(ModelConfig config, int seed, DType dtype = DType.BF16, bool tokenizer = false) =>
        s_written.GetOrAdd((System.Text.Encoding.UTF8.GetString(ModelConfigWriter.ToJson(config)), seed, dtype, tokenizer),
            _ => new Lazy<string>(() => Write(config, seed, dtype, tokenizer))).Value;

    /// <summary>Writes a fresh copy into <paramref name="dir"/>, for tests that damage or change it.</summary>
    public static string WriteTo(string dir, ModelConfig config, int seed, DType dtype = DType.BF16, bool tokenizer = false)
    {
        CheckpointWriter.Write(dir, config, SyntheticModel.Plan(config, seed, dtype), SyntheticModel.ShardCount(config, dtype));
        if (tokenizer)
            foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" })
                File.Copy(Path.Combine(TokenizerDir, f), Path.Combine(dir, f));
        return dir;
    }

    private static string Write(ModelConfig config, int seed, DType dtype, bool tokenizer)
    {
        string dir = Directory.CreateTempSubdirectory("cluster-test-model-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
        };
        return WriteTo(dir, config, seed, dtype, tokenizer);
    }
}
