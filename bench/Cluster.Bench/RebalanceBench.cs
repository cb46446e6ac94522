using System.Diagnostics;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;
using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Control;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;

namespace Cluster.Bench;

/// <summary>
/// What a live rebalance costs the steps that run through it, and what it buys: the small preset with skewed experts
/// (--expert-skew 1.2), expert hosts in this process (four; --nodes N), and decode steps of 8 rows through every MoE layer, routed
/// by the model's own (skewed) gate. After a warm-up that counts each expert's tokens, the rebalanced plan is rolled
/// out while the steps go on. Reported: the median step before, the slowest step during the rollout, the median after;
/// the expert rows each node computed (max/mean) under the start plan and after; and the experts and bytes the
/// rebalance loaded against what a fresh plan for the same load would have loaded.
/// </summary>
public static class RebalanceBench
{
    private const int Rows = 8, Redundant = 4;

    public static async Task<int> Run(string[] args)
    {
        ModelConfig config = SyntheticModel.ConfigFor(SyntheticPresets.Small, DType.BF16);
        int at = Array.IndexOf(args, "--nodes");
        int nodes = at >= 0 && at + 1 < args.Length && int.TryParse(args[at + 1], out int count) && count > 0 ? count
            : at >= 0 ? throw new ArgumentException("--nodes needs a positive count") : 4;
        string dir = Directory.CreateTempSubdirectory("cluster-rebalance-bench-").FullName;
        if (args.Contains("--min-threads")) ThreadPool.SetMinThreads(32, 32);
        var hosts = new List<ExpertHost>();
        var processes = new List<System.Diagnostics.Process>();
        bool asProcesses = args.Contains("--processes");
        try
        {
            Console.Error.WriteLine($"rebalance bench: writing the small preset with expert skew 1.2 to {dir}");
            CheckpointWriter.Write(dir, config, SyntheticModel.Plan(config, 0, DType.BF16, expertSkew: 1.2), SyntheticModel.ShardCount(config, DType.BF16));
            PlacementPlan start = PlacementPlanner.Plan(config, PlacementPlanner.LoopbackNodes(nodes, 1), null, Redundant);
            string planPath = Path.Combine(dir, "plan.json");
            start.Save(planPath);
            if (asProcesses)
            {
                // As deployed: each expert node a `cluster serve expert` process of its own (own thread pool).
                int[] ports = Cluster.Cli.Supervision.FreePorts.Take(nodes);
                start = start.WithEndpoints([.. ports.Select(p => $"127.0.0.1:{p}")]);
                start.Save(planPath);
                for (int i = 0; i < nodes; i++) processes.Add(await ExpertNodeProcess.StartAsync(dir, planPath, start.Nodes[i].Id, ports[i]));
            }
            else
            {
                foreach (ExpertNodeAddress n in start.Nodes)
                    hosts.Add(await ExpertHost.StartAsync(new ExpertHostOptions { ModelDir = dir, PlanPath = planPath, NodeId = n.Id }));
                start = start.WithEndpoints([.. hosts.Select(h => $"127.0.0.1:{h.Port}")]);
            }
            using ExpertStreams streams = await ExpertStreams.ConnectAsync(start, config, TimeSpan.FromSeconds(60));
            using var gates = Checkpoint.Open(dir, name => name.Contains(".mlp.gate.", StringComparison.Ordinal));
            var stepper = new Stepper(streams, gates, config);
            // The rollouts' channels are kept and already connected, as the gateway's Control service keeps them.
            using var control = new Cluster.Transport.PeerChannels(new Cluster.Transport.GrpcClientOptions());
            foreach (ExpertNodeAddress n in start.Nodes)
                await new Cluster.Protos.V1.ExpertService.ExpertServiceClient(control.For(n.Endpoint).Invoker).GetInfoAsync(new GetExpertInfoRequest());

            stepper.RunFor(TimeSpan.FromSeconds(3));
            double before = await stepper.RowsMaxOverMeanAsync(streams, TimeSpan.FromSeconds(3));
            double[] beforeSteps = await OnEngineThread(() => stepper.StepsFor(TimeSpan.FromSeconds(2)));
            ExpertLoad load = stepper.Load();
            // In a cluster the rollout's driver is the gateway, a process of its own that has compiled its side of a
            // change once it made one; here it shares the stepping process. A change that moves nothing (the same
            // slots under the next version) compiles it before the measured ones, and is measured too.
            var same = new PlacementPlan(start.Version + 1, start.RoutedExperts, start.Nodes, start.Layers);
            (double[] duringSame, Rollout sameRollout) = await RolloutAsync(stepper, start, same, streams, control);
            double[] afterSame = await OnEngineThread(() => stepper.StepsFor(TimeSpan.FromSeconds(2)));
            PlacementPlan next = Rebalancer.Rebalance(same, load);
            PlacementPlan fresh = PlacementPlanner.Plan(config, start.Nodes, null, Redundant, load, version: next.Version);

            (double[] during, Rollout report) = await RolloutAsync(stepper, same, next, streams, control);
            double[] afterSteps = await OnEngineThread(() => stepper.StepsFor(TimeSpan.FromSeconds(2)));
            double after = await stepper.RowsMaxOverMeanAsync(streams, TimeSpan.FromSeconds(3));
            // A second change, now that every path has run once: twice the redundant replicas.
            PlacementPlan scaled = Rebalancer.Rebalance(next, stepper.Load(), redundantExperts: 2 * Redundant);
            (double[] duringScale, Rollout scaleReport) = await RolloutAsync(stepper, next, scaled, streams, control);
            double[] afterScale = await OnEngineThread(() => stepper.StepsFor(TimeSpan.FromSeconds(2)));

            long perExpert = 3L * config.HiddenSize * config.MoeIntermediateSize * 2;
            int moved = PlanChange.Between(start, next).LoadedExperts, freshMoved = PlanChange.Between(start, fresh).LoadedExperts;
            Console.WriteLine("## Live rebalance (bench rebalance)");
            Console.WriteLine();
            Console.WriteLine($"Small preset with --expert-skew 1.2 (BF16), {nodes} expert {(asProcesses ? "node processes" : "hosts in this process")} with {Redundant} redundant experts per layer, decode steps of {Rows} rows "
                + $"through all {start.Layers.Count} MoE layers (BF16 dispatch) back to back, routed by the model's gate; 2 cores shared with other builds; load average {BenchEnvironment.LoadAverage()} at the end.");
            Console.WriteLine();
            Console.WriteLine("| change | median step before ms | slowest step during the rollout ms | ratio | slowest of as many undisturbed steps ms | ratio | median step after ms | steps during | slots loaded | prepare s | switch s | JIT in this process ms |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            Row("same slots, next version (first change)", beforeSteps, duringSame, afterSame, sameRollout);
            Row("rebalance (first change that moves slots)", afterSame, during, afterSteps, report);
            Row($"redundant {Redundant} -> {2 * Redundant}", afterSteps, duringScale, afterScale, scaleReport);
            Console.WriteLine();
            Console.WriteLine($"Steps failed: {stepper.Failed}.");
            Console.WriteLine();
            Console.WriteLine("| | start plan | rebalanced | fresh plan for the same load |");
            Console.WriteLine("|---|---:|---:|---:|");
            Console.WriteLine($"| expert rows per node, max/mean (measured) | {before:F3} | {after:F3} | |");
            Console.WriteLine($"| expected max/mean by the counted load | {ExpectedLoad.Of(start, load).MaxOverMean:F3} | {ExpectedLoad.Of(next, load).MaxOverMean:F3} | {ExpectedLoad.Of(fresh, load).MaxOverMean:F3} |");
            Console.WriteLine($"| expected per layer: busiest node summed over layers / mean (what a step waits for) | {ExpectedLoad.Of(start, load).StepMaxOverMean:F3} | {ExpectedLoad.Of(next, load).StepMaxOverMean:F3} | {ExpectedLoad.Of(fresh, load).StepMaxOverMean:F3} |");
            Console.WriteLine($"| expected max/mean in the worst layer | {ExpectedLoad.Of(start, load).WorstLayerMaxOverMean:F3} | {ExpectedLoad.Of(next, load).WorstLayerMaxOverMean:F3} | {ExpectedLoad.Of(fresh, load).WorstLayerMaxOverMean:F3} |");
            Console.WriteLine($"| experts loaded | | {moved} | {freshMoved} |");
            Console.WriteLine($"| bytes loaded | | {moved * perExpert:N0} | {freshMoved * perExpert:N0} |");
            return stepper.Failed == 0 ? 0 : 1;
        }
        finally
        {
            foreach (ExpertHost h in hosts) await h.DisposeAsync();
            foreach (System.Diagnostics.Process p in processes)
            {
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                p.Dispose();
            }
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>A rollout's report and the time this process spent compiling methods while it ran.</summary>
    private sealed record Rollout(RolloutReport Report, TimeSpan Jit);

    /// <summary>Rolls <paramref name="next"/> out on another thread while this one steps; the steps that ran meanwhile.</summary>
    private static async Task<(double[] Steps, Rollout Rollout)> RolloutAsync(Stepper stepper, PlacementPlan current, PlacementPlan next, ExpertStreams streams,
        Cluster.Transport.PeerChannels control)
    {
        TimeSpan jit = System.Runtime.JitInfo.GetCompilationTime();
        Task<RolloutReport> rollout = Task.Run(() => PlanRollout.RunAsync(current, next, [streams], control));
        double[] during = await OnEngineThread(() => stepper.StepsUntil(rollout));
        RolloutReport report = await rollout;
        jit = System.Runtime.JitInfo.GetCompilationTime() - jit;
        Console.Error.WriteLine($"rebalance bench: plan {current.Version} -> {next.Version}, steps during the rollout (ms): {string.Join(" ", during.Select(d => d.ToString("F1")))}");
        return (during, new Rollout(report, jit));
    }

    /// <summary>
    /// Steps on a thread of their own, as an attention node's engine loop runs them: stepping on a pool thread of
    /// this async method would block one of the few pool threads that the streams' replies and the rollout need.
    /// </summary>
    private static Task<T> OnEngineThread<T>(Func<T> steps) => Task.Factory.StartNew(steps, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static void Row(string change, double[] before, double[] during, double[] after, Rollout rollout)
    {
        RolloutReport report = rollout.Report;
        double median = Median(before), undisturbed = SlowestOfWindows(before, during.Length);
        Console.WriteLine($"| {change} | {median:F2} | {during.Max():F2} | {during.Max() / median:F2}x | {undisturbed:F2} | {undisturbed / median:F2}x | {Median(after):F2} | "
            + $"{during.Length} | {report.LoadedSlots} | {report.Prepare.TotalSeconds:F2} | {report.Switch.TotalSeconds:F3} | {rollout.Jit.TotalMilliseconds:F0} |");
    }

    /// <summary>
    /// The control for the slowest step of a rollout: the median, over the steps before it cut into runs of as many
    /// steps as the rollout had, of each run's slowest. On shared cores even undisturbed runs have a slow step.
    /// </summary>
    private static double SlowestOfWindows(double[] steps, int window)
    {
        window = Math.Max(1, window);
        var slowest = new List<double>();
        for (int i = 0; i + window <= steps.Length; i += window) slowest.Add(steps.AsSpan(i, window).ToArray().Max());
        return Median([.. slowest]);
    }

    private static double Median(double[] steps)
    {
        double[] sorted = [.. steps.Order()];
        return sorted[sorted.Length / 2];
    }

    /// <summary>Decode steps through every MoE layer: rows from a fixed pool, experts chosen by the layer's gate, tokens counted per expert.</summary>
    private sealed class Stepper
    {
        private readonly (int Layer, Gate Gate, IRoutedExperts Experts)[] _layers;
        private readonly Dictionary<int, long[]> _counts = [];
        private readonly float[][] _pool;
        private readonly int[] _ids;
        private readonly float[] _weights, _output;
        private int _next;

        public Stepper(ExpertStreams streams, ITensorSource gates, ModelConfig config)
        {
            var layers = new List<(int, Gate, IRoutedExperts)>();
            foreach (LayerPlacement l in streams.Plan.Layers)
            {
                _counts[l.Layer] = new long[config.NRoutedExperts];
                layers.Add((l.Layer, Gate.Load(gates, $"model.layers.{l.Layer}.mlp.gate", config, CpuBackend.Default.Kernels),
                    ExpertLoadCounter.For(streams.ForLayer(l.Layer, TensorDType.Bf16), _counts[l.Layer])));
            }
            _layers = [.. layers];
            var random = new Random(1);
            _pool = new float[64][];
            for (int p = 0; p < _pool.Length; p++)
            {
                _pool[p] = new float[Rows * config.HiddenSize];
                for (int i = 0; i < _pool[p].Length; i++) _pool[p][i] = (float)(random.NextDouble() * 2 - 1) * 1.7f;
            }
            _ids = new int[Rows * config.NumExpertsPerTok];
            _weights = new float[_ids.Length];
            _output = new float[Rows * config.HiddenSize];
        }

        public int Failed { get; private set; }

        public ExpertLoad Load() => new(_counts.ToDictionary(kv => kv.Key, kv => kv.Value.Select(c => (double)c).ToArray()));

        private double Step()
        {
            long start = Stopwatch.GetTimestamp();
            float[] rows = _pool[_next++ % _pool.Length];
            try
            {
                foreach ((_, Gate gate, IRoutedExperts experts) in _layers)
                {
                    gate.Route(rows, Rows, _ids, _weights);
                    experts.Run(rows, Rows, _ids, _weights, _output);
                }
            }
            catch (ExpertNodeException e)
            {
                Failed++;
                Console.Error.WriteLine($"rebalance bench: a step failed: {e.Message}");
            }
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        public void RunFor(TimeSpan time) => StepsFor(time);

        public double[] StepsFor(TimeSpan time)
        {
            var steps = new List<double>();
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < time) steps.Add(Step());
            return [.. steps];
        }

        public double[] StepsUntil(Task done)
        {
            var steps = new List<double>();
            while (!done.IsCompleted) steps.Add(Step());
            return [.. steps];
        }

        /// <summary>Max over mean of the expert rows each node computed while stepping for <paramref name="time"/> (its GetInfo before and after).</summary>
        public async Task<double> RowsMaxOverMeanAsync(ExpertStreams streams, TimeSpan time)
        {
            ExpertNodeInfo[] start = await streams.GetInfoAsync();
            RunFor(time);
            ExpertNodeInfo[] end = await streams.GetInfoAsync();
            double[] rows = [.. end.Select((info, i) => (double)(info.RowsServed - start[i].RowsServed))];
            return rows.Max() / rows.Average();
        }
    }
}
