using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Cluster.Tests;

namespace Cluster.Bench;

/// <summary>
/// What a network between hosts costs a decode step. Gateway, one attention node and two expert nodes of the small
/// preset, each in its own network namespace (tests/Shared/PodNetwork.cs) and finding the others by name, with a
/// delay of 0, 0.1, 0.5 and 2 ms into every pod (netem on each veth; where the kernel has no netem, a
/// <see cref="DelayLine"/> in front of every pod's port instead), beside `cluster up` on loopback as the baseline.
/// 1 and 4 concurrent streaming clients; time per output token (p50) and output tokens/s, with ratios to loopback.
/// Every MoE layer of every decode step waits for one dispatch/combine round trip to the expert nodes, so TPOT
/// should grow by about (MoE layers) x 2 x delay.
/// </summary>
public static class NetworkBench
{
    private static readonly double[] DelaysMs = [0, 0.1, 0.5, 2];
    private static readonly int[] Concurrency = [1, 4];
    private const int RequestsPerClient = 3, PromptTokens = 32, MaxTokens = 32;
    private const int GatewayPort = 8000, AttentionPort = 9000, ExpertPort = 7100;

    public static async Task<int> Run(string[] args)
    {
        if (PodNetwork.Unavailable() is { } why)
        {
            Console.Error.WriteLine("network bench: needs network namespaces (root): " + why);
            return 1;
        }
        string root = BenchEnvironment.RepoRoot(), cli = Path.Combine(AppContext.BaseDirectory, "cluster.dll");
        // --micro-batch-overlap: every attention node (cluster up's and the pod) steps with dual micro-batch overlap.
        string[] attentionFlags = Array.IndexOf(args, "--micro-batch-overlap") >= 0 ? ["--micro-batch-overlap"] : [];
        args = Array.FindAll(args, a => a != "--micro-batch-overlap");
        string model = args.Length > 0 ? Path.GetFullPath(args[0]) : Path.Combine(root, "models", "small");
        if (!File.Exists(Path.Combine(model, "config.json"))) Exec(cli, ["model", "init", "--preset", "small", "--out", model]);
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(model, "config.json")));
        int moeLayers = config.RootElement.GetProperty("num_hidden_layers").GetInt32() - config.RootElement.GetProperty("first_k_dense_replace").GetInt32();
        string work = Directory.CreateTempSubdirectory("cluster-network-bench-").FullName;
        try
        {
            string plan = WritePlan(cli, model, work);
            var rows = new List<(string Setup, int Clients, Round Round)>();

            Console.Error.WriteLine("network bench: loopback (cluster up)");
            int[] ports = Cluster.Cli.Supervision.FreePorts.Take(2);
            using (var up = ClusterUpProcess.Start(model, ports[0], ports[1], ["--expert-nodes", "2", "--redundant-experts", "2", .. attentionFlags]))
            {
                await ClusterUpProcess.WaitReadyAsync(up, TimeSpan.FromMinutes(5));
                await MeasureAsync($"http://127.0.0.1:{ports[0]}", "loopback (cluster up)", rows);
                ClusterUpProcess.Stop(up);
            }

            bool netem = PodNetwork.NetemAvailable;
            using (var pods = await Pods.StartAsync(cli, model, plan, viaDelayLines: false, attentionFlags))
            {
                if (netem)
                    foreach (double ms in DelaysMs)
                    {
                        foreach (var pod in pods.Network.Pods) pods.Network.SetDelay(pod, TimeSpan.FromMilliseconds(ms));
                        await MeasureAsync(pods.Endpoint, $"namespaces, netem {ms.ToString(CultureInfo.InvariantCulture)} ms", rows);
                    }
                else await MeasureAsync(pods.Endpoint, "namespaces, no delay", rows);
            }
            if (!netem)
            {
                Console.Error.WriteLine("network bench: this kernel has no netem; delay lines in user space instead");
                using var pods = await Pods.StartAsync(cli, model, plan, viaDelayLines: true, attentionFlags);
                foreach (double ms in DelaysMs)
                {
                    foreach (DelayLine line in pods.Lines) line.Delay = TimeSpan.FromMilliseconds(ms);
                    await MeasureAsync(pods.Endpoint, $"namespaces, delay line {ms.ToString(CultureInfo.InvariantCulture)} ms", rows);
                }
            }
            Print(rows, model, moeLayers, netem, attentionFlags.Length > 0);
            return 0;
        }
        finally { Directory.Delete(work, true); }
    }

    /// <summary>The planner's loopback endpoints replaced by the pods' names, as the chart's plan.sh does.</summary>
    private static string WritePlan(string cli, string model, string work)
    {
        string loopback = Path.Combine(work, "plan-loopback.json"), plan = Path.Combine(work, "plan.json");
        Exec(cli, ["experts", "plan", "--model", model, "--expert-nodes", "2", "--redundant-experts", "2", "--first-port", "10000", "--out", loopback]);
        string text = File.ReadAllText(loopback).Replace("\"127.0.0.1:10000\"", $"\"expert-0:{ExpertPort}\"").Replace("\"127.0.0.1:10001\"", $"\"expert-1:{ExpertPort}\"");
        if (text.Contains("\"127.0.0.1:", StringComparison.Ordinal)) throw new InvalidOperationException("a loopback endpoint is left in the plan");
        File.WriteAllText(plan, text);
        return plan;
    }

    /// <summary>The four roles, each in its namespace; with delay lines, every name resolves to a forwarder in front of its pod.</summary>
    private sealed class Pods : IDisposable
    {
        private readonly List<Process> _processes = [];
        public PodNetwork Network { get; } = new();
        public List<DelayLine> Lines { get; } = [];
        public string Endpoint { get; private set; } = "";

        public static async Task<Pods> StartAsync(string cli, string model, string plan, bool viaDelayLines, string[] attentionFlags)
        {
            var pods = new Pods();
            try
            {
                var roles = new (string Name, int Port, string[] Args)[]
                {
                    ("expert-0", ExpertPort, ["serve", "expert", "--model", model, "--plan", plan, "--node-id", "expert-0", "--host", "0.0.0.0", "--port", $"{ExpertPort}"]),
                    ("expert-1", ExpertPort, ["serve", "expert", "--model", model, "--plan", plan, "--node-id", "expert-1", "--host", "0.0.0.0", "--port", $"{ExpertPort}"]),
                    ("attention-0", AttentionPort, ["serve", "attention", "--model", model, "--plan", plan, "--node-id", "attention-0", "--host", "0.0.0.0", "--port", $"{AttentionPort}", "--http-port", "9100", .. attentionFlags]),
                    ("gateway", GatewayPort, ["serve", "gateway", "--model", model, "--attention-nodes", $"attention-0:{AttentionPort}", "--host", "0.0.0.0", "--port", $"{GatewayPort}", "--grpc-port", "8001"]),
                };
                var placed = new List<(PodNetwork.Pod Pod, string[] Args, string Address)>();
                foreach (var (name, port, args) in roles)
                {
                    PodNetwork.Pod pod = pods.Network.AddPod("pod-" + name);
                    string address = pod.Address;
                    if (viaDelayLines)
                    {
                        address = pods.Network.AddRootAddress();
                        pods.Lines.Add(new DelayLine(new IPEndPoint(IPAddress.Parse(address), port), new IPEndPoint(IPAddress.Parse(pod.Address), port)));
                    }
                    pods.Network.AddHost(address, name);
                    placed.Add((pod, args, address));
                    if (name == "gateway") pods.Endpoint = $"http://{address}:{GatewayPort}";
                }
                pods.Network.WriteHosts();
                await Task.WhenAll(placed.Select(p => pods.StartRoleAsync(cli, p.Pod, p.Args)));
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
                for (var deadline = DateTime.UtcNow.AddMinutes(2); ; await Task.Delay(200))
                {
                    try { if ((await http.GetAsync($"{pods.Endpoint}/readyz")).StatusCode == HttpStatusCode.OK) break; }
                    catch (HttpRequestException) { }
                    if (DateTime.UtcNow > deadline) throw new TimeoutException("the gateway's /readyz never answered 200");
                }
                return pods;
            }
            catch
            {
                pods.Dispose();
                throw;
            }
        }

        private async Task StartRoleAsync(string cli, PodNetwork.Pod pod, string[] args)
        {
            var p = Process.Start(Network.Exec(pod, "dotnet", [cli, .. args]))!;
            lock (_processes) _processes.Add(p);
            var log = new StringBuilder();
            p.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
            p.BeginErrorReadLine();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            while (await p.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
                if (line.StartsWith("READY ", StringComparison.Ordinal))
                {
                    // Keep reading: a role blocks once its stdout pipe is full.
                    _ = p.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
                    return;
                }
            lock (log) throw new InvalidOperationException($"{pod.Name} exited without READY:\n{log}");
        }

        public void Dispose()
        {
            foreach (DelayLine line in Lines) line.DisposeAsync().AsTask().Wait();
            lock (_processes)
                foreach (Process p in _processes)
                {
                    if (!p.HasExited) p.Kill(true);
                    p.WaitForExit(10_000);
                    p.Dispose();
                }
            Network.Dispose();
        }
    }

    private sealed record Round(List<(double FirstMs, double PerTokenMs, int Tokens)> Samples, double Seconds)
    {
        public double TokensPerSecond => Samples.Sum(s => s.Tokens) / Seconds;
        public double TpotP50 => P50(Samples.Select(s => s.PerTokenMs));
        public double TtftP50 => P50(Samples.Select(s => s.FirstMs));

        private static double P50(IEnumerable<double> values)
        {
            double[] sorted = [.. values.Order()];
            return sorted[(sorted.Length - 1) / 2];
        }
    }

    private static async Task MeasureAsync(string endpoint, string setup, List<(string, int, Round)> rows)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(5) };
        var completions = new CompletionClient(http, endpoint);
        await completions.StreamAsync(Prompt(0), MaxTokens);
        foreach (int clients in Concurrency)
        {
            Console.Error.WriteLine($"network bench: {setup}, {clients} clients");
            var clock = Stopwatch.StartNew();
            var perClient = await Task.WhenAll(Enumerable.Range(0, clients).Select(async c =>
            {
                var samples = new List<(double, double, int)>();
                for (int i = 0; i < RequestsPerClient; i++)
                {
                    StreamedCompletion s = await completions.StreamAsync(Prompt(1 + c * RequestsPerClient + i), MaxTokens);
                    double first = s.TokenTimes[0], last = s.TokenTimes[^1];
                    samples.Add((first, s.TokenTimes.Count > 1 ? (last - first) / (s.TokenTimes.Count - 1) : 0, s.CompletionTokens));
                }
                return samples;
            }));
            rows.Add((setup, clients, new Round([.. perClient.SelectMany(s => s)], clock.Elapsed.TotalSeconds)));
        }
    }

    /// <summary>Deterministic prompts of ordinary vocabulary ids after BOS (the same as the cluster bench's).</summary>
    private static uint[] Prompt(int n)
    {
        var ids = new uint[PromptTokens];
        for (int i = 1; i < ids.Length; i++) ids[i] = (uint)(1000 + (n * 7919 + i * 104729) % 100_000);
        return ids;
    }

    private static void Print(List<(string Setup, int Clients, Round Round)> rows, string model, int moeLayers, bool netem, bool overlap)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"Small preset ({Path.GetFileName(model)}, {moeLayers} MoE layers), gateway + 1 attention node + 2 expert nodes, {PromptTokens}-token prompts, {MaxTokens} output tokens, greedy, {RequestsPerClient} requests per client, micro-batch overlap {(overlap ? "on" : "off")}; delay into every pod by {(netem ? "netem" : "a user-space delay line per pod port (no netem in this kernel)")}; {Environment.ProcessorCount} cores, load {BenchEnvironment.LoadAverage()} before the run.");
        Console.WriteLine();
        Console.WriteLine("| setup | clients | TTFT p50 ms | TPOT p50 ms | output tokens/s | TPOT / loopback | tokens/s / loopback |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var (setup, clients, r) in rows)
        {
            Round baseline = rows.First(x => x.Clients == clients).Round;
            Console.WriteLine(string.Create(inv, $"| {setup} | {clients} | {r.TtftP50:F0} | {r.TpotP50:F1} | {r.TokensPerSecond:F1} | {r.TpotP50 / baseline.TpotP50:F2}x | {r.TokensPerSecond / baseline.TokensPerSecond:F2}x |"));
        }
        Console.WriteLine();
        foreach (int clients in Concurrency)
        {
            var delayed = rows.Where(x => x.Clients == clients && x.Setup.EndsWith(" ms", StringComparison.Ordinal)).ToList();
            if (delayed.Count < 2) continue;
            double slope = (delayed[^1].Round.TpotP50 - delayed[0].Round.TpotP50) / (DelaysMs[^1] - DelaysMs[0]);
            Console.WriteLine(string.Create(inv, $"{clients} client(s): TPOT grows {slope:F1} ms per ms of delay into each pod; one dispatch/combine round trip per MoE layer predicts {2 * moeLayers} ({moeLayers} layers x 2 hops)."));
        }
    }

    private static void Exec(string cli, string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { cli }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"cluster {string.Join(' ', args)} exited {p.ExitCode}: {err}{stdout.Result}");
    }
}
