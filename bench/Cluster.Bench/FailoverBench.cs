using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;
using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;

namespace Cluster.Bench;

/// <summary>
/// What losing an expert node costs a running step, on the path users run: three `cluster serve expert` processes on
/// the small preset with every expert on two of them (--expert-replicas 2), and one MoE layer's RemoteExperts in this
/// process stepping decode batches of 8 rows back to back. One node is killed (SIGKILL: its connections reset) and,
/// after it is back, another is frozen (SIGSTOP: it holds its connections and answers nothing). Reported: the median
/// step before, the slowest step of the two seconds after (the one that met the lost node and moved its rows), and
/// the time from the signal to the end of that step (when the layer has routed around the node). No step may fail:
/// every expert has a live replica.
/// </summary>
public static class FailoverBench
{
    private const int Rows = 8;

    public static async Task<int> Run(string[] args)
    {
        ModelConfig config = SyntheticModel.ConfigFor(SyntheticPresets.Small, DType.BF16);
        string dir = Directory.CreateTempSubdirectory("cluster-failover-bench-").FullName;
        var nodes = new Process?[3];
        try
        {
            Console.Error.WriteLine($"failover bench: writing the small preset to {dir}");
            CheckpointWriter.Write(dir, config, SyntheticModel.Plan(config, 0, DType.BF16), SyntheticModel.ShardCount(config, DType.BF16));
            int[] ports = Cluster.Cli.Supervision.FreePorts.Take(3);
            var addresses = ports.Select((p, i) => new ExpertNodeAddress($"expert-{i}", $"127.0.0.1:{p}")).ToArray();
            PlacementPlan plan = PlacementPlanner.Plan(config, addresses, null, 0, replicas: 2);
            string planPath = Path.Combine(dir, "plan.json");
            plan.Save(planPath);
            for (int i = 0; i < nodes.Length; i++) nodes[i] = await ExpertNodeProcess.StartAsync(dir, planPath, $"expert-{i}", ports[i]);
            using ExpertStreams streams = await ExpertStreams.ConnectAsync(plan, config, TimeSpan.FromSeconds(60));
            var stepper = new Stepper(streams.ForLayer(plan.Layers[0].Layer, TensorDType.Bf16), config);

            stepper.RunFor(TimeSpan.FromSeconds(2));
            Outcome killed = stepper.Around(() => nodes[1]!.Kill(), "SIGKILL expert-1 (connections reset)");
            nodes[1]!.WaitForExit();
            nodes[1] = await ExpertNodeProcess.StartAsync(dir, planPath, "expert-1", ports[1]);
            var until = DateTime.UtcNow.AddSeconds(30);
            while (streams.DownReason(1) is not null && DateTime.UtcNow < until) stepper.RunFor(TimeSpan.FromMilliseconds(100));
            stepper.RunFor(TimeSpan.FromSeconds(1));
            Outcome frozen = stepper.Around(() => Signal(nodes[2]!.Id, SigStop), "SIGSTOP expert-2 (silent, connections open)");
            Signal(nodes[2]!.Id, SigCont);

            Console.WriteLine("## Expert node failover (bench failover)");
            Console.WriteLine();
            Console.WriteLine($"Small preset, 3 `cluster serve expert` processes with --expert-replicas 2, one MoE layer's RemoteExperts stepping {Rows}-row decode batches (BF16 dispatch) back to back; 2 cores shared by every process; load average {BenchEnvironment.LoadAverage()} at the end.");
            Console.WriteLine();
            Console.WriteLine("| event | median step before ms | slowest step after ms | signal -> routed around ms | median step after ms | steps failed |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|");
            foreach (Outcome o in new[] { killed, frozen })
                Console.WriteLine($"| {o.Event} | {o.MedianBeforeMs:F2} | {o.SlowestAfterMs:F0} | {o.RoutedAroundMs:F0} | {o.MedianAfterMs:F2} | {o.Failed} |");
            return killed.Failed + frozen.Failed == 0 ? 0 : 1;
        }
        finally
        {
            foreach (Process? p in nodes)
            {
                if (p is null) continue;
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                p.Dispose();
            }
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private sealed record Outcome(string Event, double MedianBeforeMs, double SlowestAfterMs, double RoutedAroundMs, double MedianAfterMs, int Failed);

    /// <summary>Steps one layer's experts over the same rows again and again, recording when each step ended and how long it took.</summary>
    private sealed class Stepper(RemoteExperts experts, ModelConfig config)
    {
        private readonly float[] _rows = RandomRows(config.HiddenSize, 1);
        private readonly (int[] Ids, float[] Weights) _choices = Choices(config);
        private readonly float[] _output = new float[Rows * config.HiddenSize];
        private readonly List<(long End, double Ms)> _steps = [];
        private int _failed;

        public void RunFor(TimeSpan time)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < time) Step();
        }

        private void Step()
        {
            long start = Stopwatch.GetTimestamp();
            try { experts.Run(_rows, Rows, _choices.Ids, _choices.Weights, _output); }
            catch (ExpertNodeException e)
            {
                _failed++;
                Console.Error.WriteLine($"failover bench: a step failed: {e.Message}");
            }
            long end = Stopwatch.GetTimestamp();
            _steps.Add((end, Stopwatch.GetElapsedTime(start, end).TotalMilliseconds));
        }

        /// <summary>Steps for a second, sends the signal from another thread while stepping on, and steps for two seconds more.</summary>
        public Outcome Around(Action signal, string name)
        {
            _steps.Clear();
            _failed = 0;
            RunFor(TimeSpan.FromSeconds(1));
            double[] before = [.. _steps.Select(s => s.Ms).Order()];
            long sent = 0;
            var thread = new Thread(() =>
            {
                Thread.Sleep(20);
                Volatile.Write(ref sent, Stopwatch.GetTimestamp());
                signal();
            });
            thread.Start();
            var clock = Stopwatch.StartNew();
            while (Volatile.Read(ref sent) == 0 || clock.Elapsed < TimeSpan.FromSeconds(2)) Step();
            thread.Join();
            var after = _steps.Where(s => s.End > sent).ToArray();
            var slowest = after.MaxBy(s => s.Ms);
            double routed = Stopwatch.GetElapsedTime(sent, slowest.End).TotalMilliseconds;
            double[] later = [.. after.Select(s => s.Ms).Order()];
            Console.Error.WriteLine($"failover bench: {name}: routed around {routed:F0} ms after the signal (slowest step {slowest.Ms:F0} ms)");
            return new Outcome(name, before[before.Length / 2], slowest.Ms, routed, later[later.Length / 2], _failed);
        }
    }

    private static float[] RandomRows(int hidden, int seed)
    {
        var random = new Random(seed);
        var rows = new float[Rows * hidden];
        for (int i = 0; i < rows.Length; i++) rows[i] = (float)(random.NextDouble() * 2 - 1);
        return rows;
    }

    /// <summary>Each row picks top-k distinct experts spread over the layer, so every node gets rows.</summary>
    private static (int[] Ids, float[] Weights) Choices(ModelConfig config)
    {
        int k = config.NumExpertsPerTok, experts = config.NRoutedExperts;
        var ids = new int[Rows * k];
        var weights = new float[Rows * k];
        for (int r = 0; r < Rows; r++)
            for (int j = 0; j < k; j++)
            {
                ids[r * k + j] = (r * k + j) % experts;
                weights[r * k + j] = 1f / k;
            }
        return (ids, weights);
    }

    private const int SigStop = 19, SigCont = 18;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Signal(int pid, int signal);
}
