using System.Diagnostics;
using Cluster.Cli.Commands;
using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Bench;

/// <summary>
/// <c>bench engine --model DIR</c>: the engine on the path a user runs. This process opens the checkpoint from disk
/// through the code <c>cluster generate</c> and the attention node use (<see cref="LogitsCommand.OpenCheckpoint"/>:
/// headers, then every weight made resident), prefills a prompt, and reports the time from process start to the
/// first token, the decode rate over the first 64 tokens and the steady rate at batch 1, the weight bytes each
/// token reads and the memory read bandwidth measured in rounds between the decode steps of the same run, prefill
/// GFLOP/s, and decode at a long context beside a short one. The latent cache is BF16, as on a serving node.
/// </summary>
public static class EngineModelBench
{
    private const string Options = "--model DIR [--steady N] [--prefill N] [--context N] [--cold]";
    private const int First = 64, Short = 128;

    public static Task<int> Run(string[] args)
    {
        string? dir = null;
        int steady = 160, prefill = 512, context = 8192;
        bool cold = false;
        for (int i = 0; i < args.Length; i++)
        {
            string? value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--model": dir = value; i++; break;
                case "--steady": steady = int.Parse(value!); i++; break;
                case "--prefill": prefill = int.Parse(value!); i++; break;
                case "--context": context = int.Parse(value!); i++; break;
                case "--cold": cold = true; break;
                default: Console.Error.WriteLine($"engine bench: unknown option {args[i]} ({Options})"); return Task.FromResult(2);
            }
        }
        if (dir is null || !Directory.Exists(dir)) { Console.Error.WriteLine($"engine bench: --model {dir}: model directory not found"); return Task.FromResult(2); }
        if (context != 0 && context <= Short) { Console.Error.WriteLine($"engine bench: --context must be above {Short} (or 0 to skip)"); return Task.FromResult(2); }

        string[] files = Directory.GetFiles(dir, "*.safetensors");
        if (cold) PageCache.Evict(files);
        (long cachedBytes, long fileBytes) = PageCache.Residency(files);
        string loadBefore = BenchEnvironment.LoadAverage();

        // From here to the first token is what a user waits for after starting the process.
        double opened, loaded, first;
        Checkpoint checkpoint = LogitsCommand.OpenCheckpoint(dir);
        opened = SinceStart();
        Transformer model = Transformer.Load(checkpoint.Config, checkpoint);
        loaded = SinceStart();
        ModelConfig config = model.Config;
        int vocab = config.VocabSize;
        var logits = new float[vocab];
        int[] prompt = EngineBench.Tokens(16, 1, vocab);
        var cache = new SequenceCache(config, prompt.Length + First + steady + 8, LatentFormat.BF16);
        model.Prefill(prompt, cache, AttentionPath.Naive, logits, lastRowOnly: true);
        int[] token = [TopK.Argmax(logits)];
        first = SinceStart();
        Console.Error.WriteLine($"engine bench: first token {first:F2} s after process start (checkpoint open and resident at {opened:F2} s, model bound at {loaded:F2} s)");

        ILatentCache[] caches = [cache];
        double firstSeconds = 0;
        for (int i = 0; i < First; i++) firstSeconds += Step(model, token, caches, logits);
        double firstRate = First / firstSeconds;
        Console.Error.WriteLine($"engine bench: first {First} tokens at {firstRate:F1} tokens/s");

        long bytesPerToken = EngineBench.WeightBytesPerToken(config, checkpoint);
        const int rounds = 5;
        int perRound = Math.Max(1, steady / rounds);
        var steps = new double[rounds * perRound];
        double[] read = new double[rounds], copy = new double[rounds];
        using (var meter = new MemoryMeter())
            for (int r = 0; r < rounds; r++)
            {
                (copy[r], read[r]) = meter.Measure(3);
                double seconds = 0;
                for (int i = 0; i < perRound; i++) seconds += steps[r * perRound + i] = Step(model, token, caches, logits);
                Console.Error.WriteLine($"engine bench: round {r + 1}: read {read[r]:F1} GB/s, decode {perRound / seconds:F1} tokens/s");
            }
        double steadyRate = 1 / EngineBench.Median(steps), readGBs = EngineBench.Median(read), copyGBs = EngineBench.Median(copy);

        (double prefillSeconds, double prefillFlops) = Prefill(model, checkpoint, prefill);
        Console.Error.WriteLine($"engine bench: prefill {prefill} tokens in {prefillSeconds:F2} s, {prefillFlops / prefillSeconds / 1e9:F1} GFLOP/s");

        (double ShortRate, double LongRate)? contextRates = context == 0 ? null : Context(model, context);

        double gbPerToken = bytesPerToken / 1e9;
        Console.WriteLine("## Engine from a checkpoint on disk (bench engine --model)");
        Console.WriteLine();
        Console.WriteLine($"{dir}: {config.NumHiddenLayers} layers, hidden {config.HiddenSize}, {config.NRoutedExperts} experts top-{config.NumExpertsPerTok}, "
            + $"moe_intermediate {config.MoeIntermediateSize}, vocab {vocab}; {checkpoint.LoadedBytes / 1e9:F2} GB of weights in {files.Length} files, "
            + $"{cachedBytes * 100.0 / Math.Max(1, fileBytes):F0}% of them in the page cache at start{(cold ? " (evicted with --cold)" : "")}. "
            + $"One fresh process, {Environment.ProcessorCount} cores, BF16 latent cache. Load average {loadBefore} before, {BenchEnvironment.LoadAverage()} after.");
        Console.WriteLine();
        Console.WriteLine("| measurement | value |");
        Console.WriteLine("|---|---:|");
        Console.WriteLine($"| process start to checkpoint open and resident | {opened:F2} s |");
        Console.WriteLine($"| process start to the first token (prompt of {prompt.Length}) | {first:F2} s |");
        Console.WriteLine($"| decode, batch 1, first {First} tokens of the process | {firstRate:F1} tokens/s ({firstRate * gbPerToken / readGBs * 100:F0}% of read bandwidth) |");
        Console.WriteLine($"| decode, batch 1, steady (median step of {steps.Length}) | {steadyRate:F1} tokens/s ({steadyRate * gbPerToken / readGBs * 100:F0}% of read bandwidth) |");
        Console.WriteLine($"| weight bytes read per decode token | {bytesPerToken / 1e6:F1} MB |");
        Console.WriteLine($"| memory read bandwidth, same run (median of {rounds} rounds, {Environment.ProcessorCount} threads) | {readGBs:F2} GB/s (copy {copyGBs:F2} GB/s) |");
        Console.WriteLine($"| roofline at that read bandwidth | {readGBs / gbPerToken:F1} tokens/s |");
        Console.WriteLine($"| prefill, {prefill} tokens | {prefill / prefillSeconds:F1} tokens/s, {prefillFlops / prefillSeconds / 1e9:F1} GFLOP/s |");
        if (contextRates is var (shortRate, longRate))
        {
            Console.WriteLine($"| decode, batch 1, context {Short} | {shortRate:F1} tokens/s |");
            Console.WriteLine($"| decode, batch 1, context {context} | {longRate:F1} tokens/s ({longRate / shortRate:F2}x context {Short}; attention {AttentionFlops(config, context) / 1e9:F2} GFLOP per token) |");
        }
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project bench/Cluster.Bench -- engine --model {dir}{(cold ? " --cold" : "")}`");
        checkpoint.Dispose();
        return Task.FromResult(0);
    }

    private static double SinceStart()
    {
        using var self = Process.GetCurrentProcess();
        return (DateTime.Now - self.StartTime).TotalSeconds;
    }

    /// <summary>One greedy decode step of one sequence; its seconds.</summary>
    private static double Step(Transformer model, int[] token, ILatentCache[] caches, float[] logits)
    {
        long t0 = Stopwatch.GetTimestamp();
        model.Decode(token, caches, logits);
        token[0] = TopK.Argmax(logits);
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>
    /// Seconds to prefill <paramref name="length"/> tokens into an empty cache, and the arithmetic that takes: two
    /// FLOPs per weight a token multiplies by (the chosen experts, the last row's lm_head alone) plus causal attention.
    /// </summary>
    private static (double Seconds, double Flops) Prefill(Transformer model, ITensorSource weights, int length)
    {
        ModelConfig config = model.Config;
        int[] tokens = EngineBench.Tokens(length, 99, config.VocabSize);
        var logits = new float[config.VocabSize];
        model.Prefill(tokens.AsSpan(0, 16), new SequenceCache(config, 16, LatentFormat.BF16), AttentionPath.Naive, logits, lastRowOnly: true);
        long t0 = Stopwatch.GetTimestamp();
        model.Prefill(tokens, new SequenceCache(config, length, LatentFormat.BF16), AttentionPath.Naive, logits, lastRowOnly: true);
        double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        long perToken = 0;
        foreach (string name in weights.Names)
        {
            if (CheckpointLayout.IsMtp(config, name) || name.Contains(".mlp.experts.", StringComparison.Ordinal) || name is "model.embed_tokens.weight" or "lm_head.weight") continue;
            Weight w = weights.Get(name);
            if (w.Shape.Length == 2) perToken += (long)w.Rows * w.Cols;
        }
        for (int l = 0; l < config.NumHiddenLayers; l++)
            if (config.IsMoeLayer(l)) perToken += 3L * config.NumExpertsPerTok * config.MoeIntermediateSize * config.HiddenSize;
        double causalPairs = length * (length + 1) / 2.0;
        double attention = config.NumHiddenLayers * 2.0 * config.NumAttentionHeads * (config.QkNopeHeadDim + config.QkRopeHeadDim + config.VHeadDim) * causalPairs;
        double flops = 2.0 * perToken * length + attention + 2.0 * config.VocabSize * config.HiddenSize;
        return (seconds, flops);
    }

    /// <summary>Absorbed attention's arithmetic for one decode token over <paramref name="context"/> cached positions: scores over [latent | k_pe] and the latent sum, every head.</summary>
    private static double AttentionFlops(ModelConfig config, int context) =>
        config.NumHiddenLayers * 2.0 * config.NumAttentionHeads * (2 * config.KvLoraRank + config.QkRopeHeadDim) * context;

    /// <summary>
    /// Batch-1 decode at <see cref="Short"/> positions of context beside decode at <paramref name="context"/>, in
    /// alternating rounds (median steps). The long context's rows are a real prefill's first positions repeated:
    /// the time of a step depends on how many rows it reads, not on their values.
    /// </summary>
    private static (double ShortRate, double LongRate) Context(Transformer model, int context)
    {
        ModelConfig config = model.Config;
        const int rounds = 4, perRound = 8;
        var logits = new float[config.VocabSize];
        int[] prompt = EngineBench.Tokens(Short, 7, config.VocabSize);
        var shortCache = new SequenceCache(config, Short + rounds * perRound + 4, LatentFormat.BF16);
        var longCache = new SequenceCache(config, context + rounds * perRound + 4, LatentFormat.BF16);
        model.Prefill(prompt, shortCache, AttentionPath.Naive, logits, lastRowOnly: true);
        int[] shortToken = [TopK.Argmax(logits)];
        model.Prefill(prompt, longCache, AttentionPath.Naive, logits, lastRowOnly: true);
        int[] longToken = [shortToken[0]];
        longCache.Reserve(context);
        var row = new float[longCache.RowSize];
        for (int l = 0; l < config.NumHiddenLayers; l++)
            for (int p = Short; p < context; p++)
            {
                longCache.Read(l, p % Short, row);
                longCache.Write(l, p, row);
            }
        longCache.Advance(context - Short);
        ILatentCache[] shortCaches = [shortCache], longCaches = [longCache];
        var shortSteps = new double[rounds * perRound];
        var longSteps = new double[rounds * perRound];
        Step(model, shortToken, shortCaches, logits);
        Step(model, longToken, longCaches, logits);
        for (int r = 0; r < rounds; r++)
        {
            for (int i = 0; i < perRound; i++) shortSteps[r * perRound + i] = Step(model, shortToken, shortCaches, logits);
            for (int i = 0; i < perRound; i++) longSteps[r * perRound + i] = Step(model, longToken, longCaches, logits);
        }
        double shortRate = 1 / EngineBench.Median(shortSteps), longRate = 1 / EngineBench.Median(longSteps);
        Console.Error.WriteLine($"engine bench: decode at context {Short} {shortRate:F1} tokens/s, at {context} {longRate:F1} tokens/s");
        return (shortRate, longRate);
    }
}
