using System.Globalization;
using System.Runtime.InteropServices;
using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Model;

namespace Cluster.Cli.Commands;

/// <summary>
/// <c>cluster logits</c>: the logits of every position of a token sequence as float32 little-endian
/// [tokens, vocab_size], no header. Needs only config.json and the weights.
/// </summary>
public static class LogitsCommand
{
    public const string Usage = "logits --model DIR --tokens 0,15,27 --out FILE [--mode prefill|decode]";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string dir = args.Required("model");
        string tokenList = args.Required("tokens");
        string outPath = args.Required("out");
        string mode = args.String("mode", "prefill");
        args.RejectUnknown();
        if (mode is not ("prefill" or "decode")) throw new CliException($"--mode must be prefill or decode (got '{mode}')");
        int[] tokens = ParseTokens(tokenList);

        using Checkpoint checkpoint = OpenCheckpoint(dir);
        Transformer model = Transformer.Load(checkpoint.Config, checkpoint);
        CheckVocabulary(tokens, model, dir);

        int vocab = model.Config.VocabSize;
        var logits = new float[(long)tokens.Length * vocab];
        var cache = new SequenceCache(model.Config, tokens.Length);
        if (mode == "prefill") model.Prefill(tokens, cache, AttentionPath.Naive, logits);
        else
        {
            ILatentCache[] caches = [cache];
            for (int t = 0; t < tokens.Length; t++)
            {
                cancel.ThrowIfCancellationRequested();
                model.Decode(tokens.AsSpan(t, 1), caches, logits.AsSpan(t * vocab, vocab));
            }
        }

        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("logits are written little-endian; this machine is big-endian");
        await using var file = new FileStream(outPath, FileMode.Create, FileAccess.Write);
        file.Write(MemoryMarshal.AsBytes(logits.AsSpan()));
        Console.Error.WriteLine($"logits: {tokens.Length} x {vocab} float32 ({mode}) -> {outPath}");
        return 0;
    }

    /// <summary>Opens a checkpoint directory with a progress bar while the shard headers are read, then makes the weights resident with another.</summary>
    public static Checkpoint OpenCheckpoint(string dir)
    {
        if (!Directory.Exists(dir)) throw new CliException($"{dir}: model directory not found");
        var bar = new ProgressBar("loading");
        Checkpoint checkpoint;
        try { checkpoint = Checkpoint.Open(dir, progress: bar); }
        finally { bar.Finish(); }
        var resident = new ProgressBar("resident");
        try { checkpoint.Prefault(resident); }
        finally { resident.Finish(); }
        return checkpoint;
    }

    public static void CheckVocabulary(ReadOnlySpan<int> tokens, Transformer model, string dir)
    {
        foreach (int t in tokens)
            if ((uint)t >= (uint)model.Config.VocabSize)
                throw new CliException($"token id {t} out of range 0..{model.Config.VocabSize - 1} (vocab_size of {Path.Combine(dir, Checkpoint.ConfigFile)})");
    }

    private static int[] ParseTokens(string list)
    {
        string[] parts = list.Split(',', StringSplitOptions.TrimEntries);
        if (list.Trim().Length == 0) throw new CliException("--tokens is empty");
        var tokens = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out tokens[i]))
                throw new CliException($"--tokens: '{parts[i]}' is not a token id (expected non-negative integers separated by commas)");
        return tokens;
    }
}
