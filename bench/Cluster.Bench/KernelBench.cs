using System.Diagnostics;
using Cluster.Engine.Kernels;
using Cluster.Engine.Tensors;

namespace Cluster.Bench;

/// <summary>
/// <c>bench kernels</c>: the CPU matmul on every weight shape DeepSeek-V3 has (hidden 7168, moe_intermediate 2048,
/// q_lora 1536, kv_lora 512, 128 heads, vocab 129280) and on the bench preset's (hidden 1024, moe_intermediate 256),
/// in BF16 and FP8 with 128x128 block scales, at batch 1, 4 and 16: weight bytes streamed per second against the
/// read bandwidth measured in the same run (batch 1 is bound by bytes), and GFLOP/s (batches reuse each decoded row).
/// </summary>
public static class KernelBench
{
    private static readonly (string Name, int Rows, int Cols)[] Shapes =
    [
        ("V3 q_a_proj", 1536, 7168),
        ("V3 kv_a_proj_with_mqa", 576, 7168),
        ("V3 q_b_proj", 24576, 1536),
        ("V3 kv_b_proj", 32768, 512),
        ("V3 o_proj", 7168, 16384),
        ("V3 dense gate/up_proj", 18432, 7168),
        ("V3 dense down_proj", 7168, 18432),
        ("V3 expert gate/up_proj", 2048, 7168),
        ("V3 expert down_proj", 7168, 2048),
        ("V3 router", 256, 7168),
        ("V3 lm_head", 129280, 7168),
        ("bench expert gate/up_proj", 256, 1024),
        ("bench expert down_proj", 1024, 256),
        ("bench o_proj", 1024, 1024),
        ("bench lm_head", 129280, 1024),
    ];

    private static readonly int[] Batches = [1, 4, 16];

    public static Task<int> Run(string[] args)
    {
        double seconds = 0.3;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--seconds") seconds = double.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture);
            else { Console.Error.WriteLine($"kernels bench: unknown option {args[i]} (--seconds S per measurement)"); return Task.FromResult(2); }
        }
        WorkerPool pool = CpuBackend.Default.Pool;
        string loadBefore = BenchEnvironment.LoadAverage();
        var rows = new List<string>();
        var readings = new List<double>();
        using var meter = new MemoryMeter();
        foreach (DType dtype in new[] { DType.BF16, DType.F8E4M3 })
            foreach (var (name, outRows, cols) in Shapes)
            {
                Weight w = Make(name, outRows, cols, dtype);
                double read = meter.Measure(3).Read;
                readings.Add(read);
                var cells = new List<string>();
                foreach (int batch in Batches)
                {
                    double t = Time(pool, w, batch, seconds);
                    double gbs = w.TotalBytes / t / 1e9, gflops = 2.0 * outRows * cols * batch / t / 1e9;
                    cells.Add(batch == 1 ? $"{gbs:F1} GB/s ({gbs / read * 100:F0}%)" : $"{gflops:F0} GFLOP/s");
                }
                string line = $"| {name} | {dtype.SafetensorsName()} | {outRows} x {cols} | {w.TotalBytes / 1e6:F1} MB | {string.Join(" | ", cells)} | {read:F1} GB/s |";
                Console.Error.WriteLine("kernels bench: " + line);
                rows.Add(line);
            }
        Console.WriteLine("## Kernels (bench kernels)");
        Console.WriteLine();
        Console.WriteLine($"CPU matmul (`engine/Cluster.Engine/Kernels/MatMul.cs`) on the worker pool ({pool.Threads} threads), float32 activations, "
            + $"median of repeated runs for {seconds:0.##} s each; the read bandwidth is measured just before each shape. Load average {loadBefore} before, {BenchEnvironment.LoadAverage()} after.");
        Console.WriteLine();
        Console.WriteLine("| weight | dtype | shape | bytes | batch 1 (share of read) | batch 4 | batch 16 | read bandwidth |");
        Console.WriteLine("|---|---|---|---:|---:|---:|---:|---:|");
        foreach (string r in rows) Console.WriteLine(r);
        Console.WriteLine();
        Console.WriteLine("Command: `dotnet run -c Release --project bench/Cluster.Bench -- kernels`");
        return Task.FromResult(0);
    }

    /// <summary>A weight of the shape with values spread like a trained layer's (uniform in ±0.05), generated cheaply.</summary>
    private static Weight Make(string name, int rows, int cols, DType dtype)
    {
        var values = new float[(long)rows * cols];
        uint state = (uint)(rows * 31 + cols);
        for (long i = 0; i < values.Length; i++)
        {
            state ^= state << 13; state ^= state >> 17; state ^= state << 5;
            values[i] = (state / (float)uint.MaxValue - 0.5f) * 0.1f;
        }
        return Weight.FromFloats(name, [rows, cols], values, dtype);
    }

    /// <summary>Median seconds of one matmul of <paramref name="batch"/> rows, over repeats filling about <paramref name="budget"/> seconds.</summary>
    private static double Time(WorkerPool pool, Weight w, int batch, double budget)
    {
        var x = new float[batch * w.Cols];
        for (int i = 0; i < x.Length; i++) x[i] = (i % 13 - 6) * 0.1f;
        var y = new float[batch * w.Rows];
        MatMul.Run(pool, x, batch, w, y);
        var times = new List<double>();
        var clock = Stopwatch.StartNew();
        while (times.Count < 3 || (clock.Elapsed.TotalSeconds < budget && times.Count < 1000))
        {
            long t0 = Stopwatch.GetTimestamp();
            MatMul.Run(pool, x, batch, w, y);
            times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return EngineBench.Median([.. times]);
    }
}
