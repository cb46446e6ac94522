using System.Diagnostics;
using System.Globalization;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;
using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;

namespace Cluster.Bench;

/// <summary>
/// One MoE layer's routed experts on the small preset, local (RoutedExperts in this process) beside remote
/// (RemoteExperts over loopback to expert hosts in this process), BF16 and FP8 dispatch, at decode and prefill
/// batch sizes: the cost of dispatch/combine on top of the same expert compute.
/// Arguments: seconds per round (0.5), expert nodes (2; with more than one, 2 redundant experts).
/// </summary>
public static class ExpertsBench
{
    private const int Rounds = 5;
    private static readonly int[] Batches = [1, 16, 256];

    public static async Task<int> Run(string[] args)
    {
        double seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 0.5;
        int nodes = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 2;
        int redundant = nodes > 1 ? 2 : 0;
        ModelConfig config = SyntheticModel.ConfigFor(SyntheticPresets.Small, DType.BF16);
        string dir = Directory.CreateTempSubdirectory("cluster-experts-bench-").FullName;
        var hosts = new List<ExpertHost>();
        try
        {
            Console.Error.WriteLine($"experts bench: writing the small preset to {dir}");
            CheckpointWriter.Write(dir, config, SyntheticModel.Plan(config, 0, DType.BF16), SyntheticModel.ShardCount(config, DType.BF16));
            PlacementPlan plan = PlacementPlanner.Plan(config, PlacementPlanner.LoopbackNodes(nodes, 1), null, redundant);
            string planPath = Path.Combine(dir, "plan.json");
            plan.Save(planPath);
            foreach (ExpertNodeAddress node in plan.Nodes)
                hosts.Add(await ExpertHost.StartAsync(new ExpertHostOptions { ModelDir = dir, PlanPath = planPath, NodeId = node.Id }));
            plan = plan.WithEndpoints(hosts.Select(h => $"127.0.0.1:{h.Port}").ToArray());
            using ExpertStreams streams = await ExpertStreams.ConnectAsync(plan, config, TimeSpan.FromSeconds(30));
            using var checkpoint = Checkpoint.Open(dir);
            Measure(config, checkpoint, streams, seconds, redundant);
            return 0;
        }
        finally
        {
            foreach (ExpertHost h in hosts) await h.DisposeAsync();
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static void Measure(ModelConfig config, Checkpoint checkpoint, ExpertStreams streams, double seconds, int redundant)
    {
        int layer = streams.Plan.Layers[0].Layer, hidden = config.HiddenSize, k = config.NumExpertsPerTok;
        Moe moe = Moe.Load(checkpoint, config, layer);
        IRoutedExperts[] sides = [moe.Experts, streams.ForLayer(layer, TensorDType.Bf16), streams.ForLayer(layer, TensorDType.Fp8E4M3)];
        string[] names = ["local", "remote BF16", "remote FP8"];

        var inputs = new Dictionary<int, (float[] X, int[] Ids, float[] W)>();
        var rng = new Random(1);
        foreach (int n in Batches)
        {
            var x = new float[n * hidden];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
            var ids = new int[n * k];
            var w = new float[n * k];
            moe.Gate.Route(x, n, ids, w);
            inputs[n] = (x, ids, w);
        }

        // Warm-up (JIT, connections), then alternating rounds; each side keeps its best round's median.
        var output = new float[Batches.Max() * hidden];
        foreach (int n in Batches)
            foreach (IRoutedExperts side in sides) Time(side, inputs[n], n, output, 0.1);
        var best = new double[Batches.Length, sides.Length];
        for (int i = 0; i < best.Length; i++) best[i / sides.Length, i % sides.Length] = double.MaxValue;
        for (int round = 0; round < Rounds; round++)
        {
            Console.Error.WriteLine($"experts bench: round {round + 1}/{Rounds}");
            for (int bi = 0; bi < Batches.Length; bi++)
                for (int s = 0; s < sides.Length; s++)
                    best[bi, s] = Math.Min(best[bi, s], Time(sides[s], inputs[Batches[bi]], Batches[bi], output, seconds));
        }

        Console.WriteLine("## Expert dispatch (bench experts)");
        Console.WriteLine();
        Console.WriteLine($"One MoE layer of the small preset (hidden {hidden}, {config.NRoutedExperts} experts, top-{k}); remote = "
            + $"{streams.Nodes.Count} expert host(s) in this process on loopback with {redundant} redundant experts. Median time per layer "
            + $"call, best of {Rounds} alternating rounds of {seconds:0.##} s; {Environment.ProcessorCount} cores shared by client and hosts; "
            + $"load average {BenchEnvironment.LoadAverage()} at the end.");
        Console.WriteLine();
        Console.WriteLine("| rows | " + string.Join(" | ", names.Select(s => s + " (µs)")) + " | BF16 / local | FP8 / local |");
        Console.WriteLine("|---:|" + string.Concat(Enumerable.Repeat("---:|", names.Length + 2)));
        for (int bi = 0; bi < Batches.Length; bi++)
            Console.WriteLine($"| {Batches[bi]} | {best[bi, 0]:F0} | {best[bi, 1]:F0} | {best[bi, 2]:F0} | {best[bi, 1] / best[bi, 0]:F2}x | {best[bi, 2] / best[bi, 0]:F2}x |");
    }

    /// <summary>Median microseconds per call over about <paramref name="seconds"/>.</summary>
    private static double Time(IRoutedExperts side, (float[] X, int[] Ids, float[] W) input, int n, float[] output, double seconds)
    {
        var samples = new List<double>();
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < seconds || samples.Count < 5)
        {
            long start = Stopwatch.GetTimestamp();
            side.Run(input.X, n, input.Ids, input.W, output);
            samples.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        }
        samples.Sort();
        return samples[samples.Count / 2];
    }
}
