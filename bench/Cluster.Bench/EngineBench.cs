using System.Diagnostics;
using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Sampling;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Bench;

/// <summary>
/// Forward-pass speed on the bench preset (generated in memory, seed 0): decode tokens/s at batch 1 and 16,
/// prefill tokens/s for one 512-token prompt, and the share of memory bandwidth batch-1 decode reaches
/// (weight bytes one token reads over its time) beside a parallel memory copy measured in the same run. A kernel
/// benchmark: the path users run, a checkpoint from disk in a fresh process, is <see cref="EngineModelBench"/>
/// (<c>engine --model DIR</c>).
/// </summary>
public static class EngineBench
{
    public static Task<int> Run(string[] args)
    {
        if (Array.IndexOf(args, "--model") >= 0) return EngineModelBench.Run(args);
        DType dtype = DType.BF16;
        int steps = 16, prompt = 512;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--weights": dtype = args[i + 1] switch { "bf16" => DType.BF16, "fp8" => DType.F8E4M3, var w => throw new ArgumentException($"--weights bf16|fp8 (got {w})") }; break;
                case "--steps": steps = int.Parse(args[i + 1]); break;
                case "--prefill": prompt = int.Parse(args[i + 1]); break;
                default: Console.Error.WriteLine($"engine bench: unknown option {args[i]} (--weights bf16|fp8, --steps N, --prefill N; or --model DIR, see EngineModelBench)"); return Task.FromResult(2);
            }
        }

        ModelConfig config = SyntheticModel.ConfigFor(SyntheticPresets.Bench, dtype);
        var clock = Stopwatch.StartNew();
        InMemoryTensorSource weights = SyntheticModel.CreateWeights(config, 0, dtype);
        Console.Error.WriteLine($"engine bench: bench preset ({dtype.SafetensorsName()}) generated in {clock.Elapsed.TotalSeconds:F1} s, {weights.TotalBytes / 1e9:F2} GB");
        Transformer model = Transformer.Load(config, weights);
        long bytesPerToken = WeightBytesPerToken(config, weights);

        string loadBefore = BenchEnvironment.LoadAverage();
        // Rounds of (memory copy, batch-1 decode) side by side, so the ratio compares the two under the same load
        // on a shared machine; the medians over rounds are reported.
        const int rounds = 5;
        double[] copy = new double[rounds], read = new double[rounds], decode = new double[rounds], share = new double[rounds];
        using (var meter = new MemoryMeter())
            for (int r = 0; r < rounds; r++)
            {
                (copy[r], read[r]) = meter.Measure(3);
                decode[r] = Decode(model, batch: 1, steps);
                share[r] = bytesPerToken * decode[r] / 1e9 / copy[r];
                Console.Error.WriteLine($"engine bench: round {r + 1}: copy {copy[r]:F1} GB/s, read {read[r]:F1} GB/s, decode batch 1 {decode[r]:F1} tokens/s ({share[r] * 100:F0}% of copy)");
            }
        double shareLow = share.Min(), shareHigh = share.Max();
        double decode1 = Median(decode), copyGBs = Median(copy), readGBs = Median(read), shareMedian = Median(share);

        double decode16 = Decode(model, batch: 16, Math.Max(4, steps / 2));
        Console.Error.WriteLine($"engine bench: decode batch 16 {decode16:F1} tokens/s");
        double prefill = Prefill(model, prompt);
        Console.Error.WriteLine($"engine bench: prefill {prompt} {prefill:F1} tokens/s");

        double achieved = bytesPerToken * decode1 / 1e9;
        Console.WriteLine("## Engine");
        Console.WriteLine();
        Console.WriteLine($"Bench preset ({config.NumHiddenLayers} layers, hidden {config.HiddenSize}, {config.NRoutedExperts} experts top-{config.NumExpertsPerTok}, "
            + $"vocab {config.VocabSize}; {weights.TotalBytes / 1e9:F2} GB of {dtype.SafetensorsName()} weights generated in memory with seed 0), "
            + $"{Environment.ProcessorCount} cores, one process, float32 activations. Load average {loadBefore} before, {BenchEnvironment.LoadAverage()} after.");
        Console.WriteLine();
        Console.WriteLine("| measurement | value |");
        Console.WriteLine("|---|---:|");
        Console.WriteLine($"| decode, batch 1 (median step of {steps}, median of {rounds} rounds) | {decode1:F1} tokens/s |");
        Console.WriteLine($"| decode, batch 16 (median step) | {decode16:F1} tokens/s ({decode16 / decode1:F1}x batch 1) |");
        Console.WriteLine($"| prefill, {prompt} tokens | {prefill:F1} tokens/s |");
        Console.WriteLine($"| weight bytes read per decode token (batch 1) | {bytesPerToken / 1e6:F1} MB |");
        Console.WriteLine($"| decode batch 1 weight read rate | {achieved:F2} GB/s |");
        Console.WriteLine($"| memory copy bandwidth (read + write, {Environment.ProcessorCount} threads) | {copyGBs:F2} GB/s |");
        Console.WriteLine($"| memory read bandwidth (sum, {Environment.ProcessorCount} threads) | {readGBs:F2} GB/s |");
        Console.WriteLine($"| **share of copy bandwidth at batch 1** (median of rounds; range) | **{shareMedian * 100:F0}%** ({shareLow * 100:F0}-{shareHigh * 100:F0}%; {achieved / readGBs * 100:F0}% of read) |");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project bench/Cluster.Bench -- engine{(dtype == DType.BF16 ? "" : " --weights fp8")}`");
        return Task.FromResult(0);
    }

    /// <summary>
    /// Bytes one batch-1 decode step reads: every attention, dense-MLP, router and shared-expert weight, the
    /// chosen routed experts (top-k of equal size), one embedding row, lm_head. MTP tensors are never loaded.
    /// </summary>
    internal static long WeightBytesPerToken(ModelConfig config, ITensorSource weights)
    {
        long total = 0;
        foreach (string name in weights.Names)
        {
            if (CheckpointLayout.IsMtp(config, name) || name.Contains(".mlp.experts.", StringComparison.Ordinal)) continue;
            Weight w = weights.Get(name);
            total += name == "model.embed_tokens.weight" ? w.TotalBytes / w.Rows : w.TotalBytes;
        }
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            if (!config.IsMoeLayer(l)) continue;
            long expert = 0;
            foreach (string p in new[] { "gate_proj", "up_proj", "down_proj" }) expert += weights.Get($"model.layers.{l}.mlp.experts.0.{p}.weight").TotalBytes;
            total += config.NumExpertsPerTok * expert;
        }
        return total;
    }

    /// <summary>Seeded random token ids: what the benchmarks prefill and decode.</summary>
    internal static int[] Tokens(int count, ulong seed, int vocab)
    {
        var random = new Xoshiro256(seed);
        var tokens = new int[count];
        for (int i = 0; i < count; i++) tokens[i] = (int)(random.Next() % (ulong)vocab);
        return tokens;
    }

    /// <summary>Tokens per second of greedy decode steps for <paramref name="batch"/> sequences after a 16-token prompt each (median step).</summary>
    private static double Decode(Transformer model, int batch, int steps)
    {
        int vocab = model.Config.VocabSize;
        var caches = new ILatentCache[batch];
        var tokens = new int[batch];
        var logits = new float[batch * vocab];
        var last = new float[vocab];
        for (int b = 0; b < batch; b++)
        {
            caches[b] = new SequenceCache(model.Config, 16 + steps + 4);
            model.Prefill(Tokens(16, (ulong)b + 1, vocab), caches[b], AttentionPath.Naive, last, lastRowOnly: true);
            tokens[b] = TopK.Argmax(last);
        }
        void Step()
        {
            model.Decode(tokens, caches, logits);
            for (int b = 0; b < batch; b++) tokens[b] = TopK.Argmax(logits.AsSpan(b * vocab, vocab));
        }
        for (int i = 0; i < 2; i++) Step();
        // The median step, so a burst from another process on a shared machine does not decide the result.
        var times = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            Step();
            times[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        return batch / Median(times);
    }

    private static double Prefill(Transformer model, int length)
    {
        int[] tokens = Tokens(length, 99, model.Config.VocabSize);
        var logits = new float[model.Config.VocabSize];
        model.Prefill(tokens.AsSpan(0, 16), new SequenceCache(model.Config), AttentionPath.Naive, logits, lastRowOnly: true);
        var clock = Stopwatch.StartNew();
        model.Prefill(tokens, new SequenceCache(model.Config, length), AttentionPath.Naive, logits, lastRowOnly: true);
        return length / clock.Elapsed.TotalSeconds;
    }

    /// <summary>The median; sorts <paramref name="values"/> in place.</summary>
    internal static double Median(double[] values)
    {
        Array.Sort(values);
        int n = values.Length;
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }
}
