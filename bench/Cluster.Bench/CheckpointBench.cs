using System.Diagnostics;
using System.Numerics;
using System.Runtime.InteropServices;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Bench;

/// <summary>
/// Checkpoint I/O on the bench preset: writing a synthetic checkpoint beside a plain sequential write of the same
/// bytes, opening it, reading every weight through the memory map beside the same read from an in-memory copy, and the
/// resident memory that reading all weights (and only one layer's 8 experts) adds, against the bytes loaded.
/// </summary>
public static unsafe class CheckpointBench
{
    public static Task<int> Run(string[] args)
    {
        DType dtype = DType.BF16;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--weights": dtype = args[i + 1] switch { "bf16" => DType.BF16, "fp8" => DType.F8E4M3, var w => throw new ArgumentException($"--weights bf16|fp8 (got {w})") }; break;
                default: Console.Error.WriteLine($"checkpoint bench: unknown option {args[i]} (--weights bf16|fp8)"); return Task.FromResult(2);
            }
        }
        string dir = Directory.CreateTempSubdirectory("cluster-bench-checkpoint-").FullName;
        try { Measure(dir, dtype); }
        finally { Directory.Delete(dir, recursive: true); }
        return Task.FromResult(0);
    }

    private static void Measure(string dir, DType dtype)
    {
        string load = BenchEnvironment.LoadAverage();
        ModelConfig config = SyntheticModel.ConfigFor(SyntheticPresets.Bench, dtype);
        var clock = Stopwatch.StartNew();
        long bytes = CheckpointWriter.Write(Path.Combine(dir, "model"), config, SyntheticModel.Plan(config, 0, dtype), SyntheticModel.ShardCount(config, dtype));
        double initS = clock.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"checkpoint bench: wrote {bytes / 1e9:F2} GB in {initS:F1} s");
        double plainS = PlainWrite(Path.Combine(dir, "plain.bin"), bytes);
        Console.Error.WriteLine($"checkpoint bench: plain write of the same bytes {plainS:F1} s");

        long rssBefore = Rss();
        clock.Restart();
        using var checkpoint = Checkpoint.Open(Path.Combine(dir, "model"));
        double openMs = clock.Elapsed.TotalMilliseconds;
        long rssOpen = Rss() - rssBefore;
        var weights = checkpoint.Names.Select(checkpoint.Get).ToList();
        clock.Restart();
        ulong fold = 0;
        foreach (Weight w in weights) fold ^= Fold(w);
        double firstS = clock.Elapsed.TotalSeconds;
        long rssAll = Rss() - rssBefore;
        // The same bytes from anonymous memory: what a loader that copies weights into the heap would read at best.
        long loaded = checkpoint.LoadedBytes;
        byte* copy = (byte*)NativeMemory.AlignedAlloc((nuint)loaded, 64);
        long at = 0;
        foreach (Weight w in weights)
        {
            w.Bytes.CopyTo(new Span<byte>(copy + at, (int)w.ByteLength));
            at += w.ByteLength;
            if (w.ScaleInv is { } s) { s.Bytes.CopyTo(new Span<byte>(copy + at, (int)s.ByteLength)); at += s.ByteLength; }
        }
        // Alternate the two, best of three each: the machine is shared and single passes are noisy.
        double mappedS = double.MaxValue, heapS = double.MaxValue;
        for (int round = 0; round < 3; round++)
        {
            clock.Restart();
            foreach (Weight w in weights) fold ^= Fold(w);
            mappedS = Math.Min(mappedS, clock.Elapsed.TotalSeconds);
            clock.Restart();
            for (long o = 0; o < loaded; o += int.MaxValue / 2) fold ^= Fold(new ReadOnlySpan<byte>(copy + o, (int)Math.Min(int.MaxValue / 2, loaded - o)));
            heapS = Math.Min(heapS, clock.Elapsed.TotalSeconds);
        }
        NativeMemory.AlignedFree(copy);

        // An expert node's view: one MoE layer's first 8 experts, in a fresh process-level mapping.
        string Expert(int j) => $"model.layers.{config.FirstKDenseReplace}.mlp.experts.{j}.";
        using var subset = Checkpoint.Open(Path.Combine(dir, "model"), n => Enumerable.Range(0, 8).Any(j => n.StartsWith(Expert(j), StringComparison.Ordinal)));
        long rssBeforeSubset = Rss();
        foreach (string n in subset.Names) fold ^= Fold(subset.Get(n));
        long rssSubset = Rss() - rssBeforeSubset;
        GC.KeepAlive(fold);

        double gb = loaded / 1e9;
        Console.WriteLine("## Checkpoint I/O");
        Console.WriteLine();
        Console.WriteLine($"Bench preset, {dtype.SafetensorsName()} weights, seed 0: {bytes / 1e9:F2} GB in {SyntheticModel.ShardCount(config, dtype)} shards "
            + $"({gb:F2} GB loaded: the MTP layer is skipped), {Environment.ProcessorCount} cores, load average {load} when it started.");
        Console.WriteLine();
        Console.WriteLine("| what | ours | reference | ratio |");
        Console.WriteLine("|---|---:|---:|---:|");
        Console.WriteLine($"| write: `model init` (generate + write) vs a plain sequential write of as many bytes | {bytes / 1e9 / initS:F2} GB/s | {bytes / 1e9 / plainS:F2} GB/s | {plainS / initS:F2}x |");
        Console.WriteLine($"| read every weight, one thread, best of 3: memory-mapped vs an in-memory copy | {gb / mappedS:F2} GB/s | {gb / heapS:F2} GB/s | {heapS / mappedS:F2}x |");
        Console.WriteLine($"| resident memory added by opening and reading every weight vs the bytes loaded | {rssAll / 1e9:F2} GB | {gb:F2} GB | {(double)rssAll / loaded:F2}x |");
        Console.WriteLine($"| resident memory added by reading 8 experts of one layer (a subset checkpoint) vs their bytes | {rssSubset / 1e6:F1} MB | {subset.LoadedBytes / 1e6:F1} MB | {(double)rssSubset / subset.LoadedBytes:F2}x |");
        Console.WriteLine();
        Console.WriteLine($"Opening (headers, validation of every shape) took {openMs:F0} ms and added {rssOpen / 1e6:F1} MB resident; the first read of "
            + $"every weight (page faults on a warm page cache) ran at {gb / firstS:F2} GB/s. Target: resident weight memory at most 1.1x the checkpoint.");
        Console.WriteLine();
        Console.WriteLine("```bash");
        Console.WriteLine($"dotnet run -c Release --project bench/Cluster.Bench -- checkpoint{(dtype == DType.F8E4M3 ? " --weights fp8" : "")}");
        Console.WriteLine("```");
    }

    private static double PlainWrite(string path, long bytes)
    {
        var buffer = new byte[1 << 20];
        new Random(1).NextBytes(buffer);
        var clock = Stopwatch.StartNew();
        using (var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            for (long left = bytes; left > 0; left -= buffer.Length) f.Write(buffer, 0, (int)Math.Min(buffer.Length, left));
        double s = clock.Elapsed.TotalSeconds;
        File.Delete(path);
        return s;
    }

    private static ulong Fold(Weight w) => Fold(w.Bytes) ^ (w.ScaleInv is { } s ? Fold(s.Bytes) : 0);

    /// <summary>XOR of every 8-byte word: touches each byte once at memory speed.</summary>
    private static ulong Fold(ReadOnlySpan<byte> bytes)
    {
        ReadOnlySpan<Vector<ulong>> v = MemoryMarshal.Cast<byte, Vector<ulong>>(bytes);
        Vector<ulong> acc = default;
        foreach (Vector<ulong> x in v) acc ^= x;
        ulong r = 0;
        for (int i = 0; i < Vector<ulong>.Count; i++) r ^= acc[i];
        for (int i = v.Length * Vector<byte>.Count; i < bytes.Length; i++) r ^= bytes[i];
        return r;
    }

    /// <summary>Resident set size from /proc (Linux), including the mapped file pages that were touched.</summary>
    private static long Rss()
    {
        using var p = Process.GetCurrentProcess();
        p.Refresh();
        return p.WorkingSet64;
    }
}
