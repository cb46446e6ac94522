using System.Diagnostics;
using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Model;
using Cluster.Engine.Sampling;

namespace Cluster.Cli.Commands;

/// <summary>
/// <c>cluster generate</c>: one prompt on one process, text streamed to stdout as it is sampled; prompt and decode
/// speed on stderr. The prompt is prefilled at once, then each token is one absorbed-attention decode step.
/// </summary>
public static class GenerateCommand
{
    public const string Usage = "generate --model DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]";

    public static Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string dir = args.Required("model");
        string prompt = args.Required("prompt");
        int maxTokens = args.Int("max-tokens", 64, 1, 1 << 20);
        var options = new SamplingOptions(
            Temperature: args.Double("temperature", 0, 0, 100),
            TopP: args.Double("top-p", 1, double.Epsilon, 1),
            TopK: args.Int("top-k", 0, 0),
            Seed: (ulong)args.Long("seed", 0, 0));
        args.RejectUnknown();

        if (!Directory.Exists(dir)) throw new CliException($"{dir}: model directory not found");
        Tokenizer.Tokenizer tokenizer;
        try { tokenizer = Tokenizer.Tokenizer.FromDirectory(dir); }
        catch (Exception e) when (e is IOException or InvalidDataException or FormatException or System.Text.Json.JsonException)
        {
            throw new CliException($"{dir}: no usable tokenizer ({e.Message})");
        }
        using Checkpoint checkpoint = LogitsCommand.OpenCheckpoint(dir);
        Transformer model = Transformer.Load(checkpoint.Config, checkpoint);
        var config = model.Config;

        int[] ids = tokenizer.Encode(prompt, addSpecialTokens: true);
        if (config.BosTokenId is int bos && (ids.Length == 0 || ids[0] != bos)) ids = [bos, .. ids];
        if (ids.Length == 0) throw new CliException("--prompt encodes to no tokens");
        LogitsCommand.CheckVocabulary(ids, model, dir);
        if (ids.Length + maxTokens > config.MaxPositionEmbeddings)
            throw new CliException($"prompt ({ids.Length} tokens) + --max-tokens {maxTokens} exceeds max_position_embeddings = {config.MaxPositionEmbeddings}");

        var eos = new HashSet<int>(config.EosTokenIds);
        if (tokenizer.EosId is int e2) eos.Add(e2);
        var sampler = new Sampler(options, config.VocabSize);
        var detokenizer = new Tokenizer.StreamingDetokenizer(tokenizer, skipSpecialTokens: true);
        var cache = new SequenceCache(config, ids.Length + maxTokens);
        ILatentCache[] caches = [cache];
        var logits = new float[config.VocabSize];
        var stdout = Console.Out;

        // Checkpoints pad vocab_size beyond the tokenizer (DeepSeek-V3: 129280 vs 128815 + added tokens); ids
        // without text are never sampled.
        int textIds = Math.Min(tokenizer.VocabSize, config.VocabSize);

        var clock = Stopwatch.StartNew();
        model.Prefill(ids, cache, AttentionPath.Naive, logits, lastRowOnly: true);
        double prefillSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        int generated = 0;
        int[] next = new int[1];
        while (true)
        {
            logits.AsSpan(textIds).Fill(float.NegativeInfinity);
            int token = sampler.Sample(logits).Id;
            generated++;
            if (eos.Contains(token)) break;
            stdout.Write(detokenizer.Push(token));
            stdout.Flush();
            if (generated == maxTokens || cancel.IsCancellationRequested) break;
            next[0] = token;
            model.Decode(next, caches, logits);
        }
        stdout.WriteLine(detokenizer.Flush());
        double decodeSeconds = clock.Elapsed.TotalSeconds;
        cancel.ThrowIfCancellationRequested();
        // The first generated token comes from the prefill's logits; the rest took one decode step each.
        int steps = generated - 1;
        Console.Error.WriteLine($"prompt: {ids.Length} tokens in {prefillSeconds:F2} s ({ids.Length / prefillSeconds:F1} tokens/s); "
            + $"decode: {steps} tokens in {decodeSeconds:F2} s ({(steps == 0 ? 0 : steps / decodeSeconds):F1} tokens/s)");
        return Task.FromResult(0);
    }
}
