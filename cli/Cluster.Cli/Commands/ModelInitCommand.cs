using System.Diagnostics;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster model init</c>: a random checkpoint in DeepSeek-V3's Hugging Face layout, with the real tokenizer files.</summary>
public static class ModelInitCommand
{
    public const string Usage = "model init --preset tiny|small|bench --out DIR [--seed N] [--weights bf16|fp8] [--expert-skew S] [--force]";

    public static Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string presetName = args.Required("preset");
        string dir = args.Required("out");
        int seed = args.Int("seed", 0, 0, int.MaxValue);
        string weights = args.String("weights", "bf16");
        double skew = args.Double("expert-skew", 0, 0, 4);
        bool force = args.Flag("force");
        args.RejectUnknown();

        if (Array.IndexOf(SyntheticPresets.Names, presetName) < 0)
            throw new CliException($"unknown preset '{presetName}' (expected {string.Join(", ", SyntheticPresets.Names)})");
        DType dtype = weights switch
        {
            "bf16" => DType.BF16,
            "fp8" => DType.F8E4M3,
            _ => throw new CliException($"--weights must be bf16 or fp8 (got '{weights}')"),
        };
        if (File.Exists(dir)) throw new CliException($"{dir} is a file, not a directory");
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any() && !force)
            throw new CliException($"{dir} is not empty (use --force to overwrite)");
        // Before the long write: fails fast when npm is missing.
        string tokenizerDir = NpmPackages.DeepSeekTokenizerDirectory();

        ModelConfig config = SyntheticModel.ConfigFor(SyntheticPresets.ByName(presetName), dtype);
        var clock = Stopwatch.StartNew();
        var bar = new ProgressBar($"{presetName} {weights}");
        long bytes;
        int shards = SyntheticModel.ShardCount(config, dtype);
        try { bytes = CheckpointWriter.Write(dir, config, SyntheticModel.Plan(config, seed, dtype, skew), shards, bar, cancel); }
        finally { bar.Finish(); }
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(tokenizerDir, f), Path.Combine(dir, f), overwrite: true);

        var stats = ModelStatistics.For(config);
        string skewText = skew > 0 ? $", expert skew {skew}" : "";
        Console.WriteLine($"{dir}: preset {presetName}, seed {seed}, {weights}{skewText}: {stats.TotalParameters + stats.MtpParameters:N0} parameters "
            + $"({stats.MtpParameters:N0} in the MTP layer), {bytes:N0} bytes in {shards} shards, {clock.Elapsed.TotalSeconds:F1} s");
        return Task.FromResult(0);
    }
}
