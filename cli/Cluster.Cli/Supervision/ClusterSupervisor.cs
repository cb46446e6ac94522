using System.Diagnostics;
using System.Text.Json;
using Cluster.AttentionNode;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.ExpertNode.Placement;
using Cluster.Transport;

namespace Cluster.Cli.Supervision;

/// <summary>
/// A whole cluster on this machine, one OS process per role: computes the placement plan on free loopback ports,
/// starts the expert nodes, attention nodes and gateway together, reports each as it becomes ready, and is up
/// when the gateway's /readyz answers 200. A child that dies during start fails the start with its last log lines;
/// one that dies later is restarted by <see cref="SuperviseAsync"/> as a kubelet would, with backoff, while the rest
/// serve on. Disposing stops every child (SIGTERM, then the process tree is killed).
/// </summary>
public sealed class ClusterSupervisor : IAsyncDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(1), MaxBackoff = TimeSpan.FromSeconds(30);
    /// <summary>A child that ran this long before dying starts again from the first backoff, as kubelet's CrashLoopBackOff resets.</summary>
    private static readonly TimeSpan HealthyRun = TimeSpan.FromMinutes(1);

    private readonly List<ChildProcess> _children = [];
    private readonly List<string[]> _args = [];
    private readonly List<int> _restarts = [];
    private readonly string _runDir;

    private ClusterSupervisor(string runDir) => _runDir = runDir;

    public string HttpEndpoint { get; private set; } = "";
    public string GrpcEndpoint { get; private set; } = "";
    /// <summary>Every attention node with its role: "prefill", "decode" or "both".</summary>
    /// <summary>Each attention node: its gRPC endpoint and its HTTP statistics URL (GET /stats, GET /metrics).</summary>
    public List<(string Id, string Role, string Endpoint, string StatsUrl)> AttentionNodes { get; } = [];
    /// <summary>Each expert node: its gRPC endpoint and its HTTP metrics URL (GET /metrics).</summary>
    public List<(string Id, string Endpoint, string MetricsUrl)> ExpertNodes { get; } = [];
    public IReadOnlyList<ChildProcess> Children => _children;
    /// <summary>How often each child (in <see cref="Children"/> order) has been restarted.</summary>
    public IReadOnlyList<int> Restarts => _restarts;
    public string PlanPath => Path.Combine(_runDir, "plan.json");
    /// <summary>The file holding the cluster's token, which every role is started with (and `cluster experts` needs).</summary>
    public string TokenPath { get; private set; } = "";
    public ClusterToken Token { get; private set; } = null!;

    public static async Task<ClusterSupervisor> StartAsync(ClusterLayout layout, CancellationToken cancel)
    {
        ModelConfig config = ModelConfig.Load(Path.Combine(layout.ModelDir, Checkpoint.ConfigFile));
        ExpertLoad? load = layout.ExpertLoadPath is null ? null : ExpertLoad.Load(layout.ExpertLoadPath, config);
        FreePorts.CheckFree(layout.HttpPort, "--port");
        FreePorts.CheckFree(layout.GrpcPort, "--grpc-port");
        int attentionNodes = layout.PrefillNodes + layout.DecodeNodes + layout.AttentionNodes;
        // Two ports per node, gRPC and HTTP (statistics, metrics): the expert nodes' first, then the attention nodes'.
        int[] ports = FreePorts.Take(2 * layout.ExpertNodes + 2 * attentionNodes);
        var experts = new ExpertNodeAddress[layout.ExpertNodes];
        for (int i = 0; i < experts.Length; i++) experts[i] = new ExpertNodeAddress($"expert-{i}", $"127.0.0.1:{ports[i]}");
        PlacementPlan plan = PlacementPlanner.Plan(config, experts, null, layout.RedundantExperts, load, replicas: layout.ExpertReplicas);

        var cluster = new ClusterSupervisor(Directory.CreateTempSubdirectory("cluster-up-").FullName);
        try
        {
            plan.Save(cluster.PlanPath);
            (cluster.TokenPath, cluster.Token) = TokenFor(layout, cluster._runDir);
            if (layout.ClusterTlsDir is { } tlsDir) cluster.Token = cluster.Token.WithTls(TlsFor(tlsDir.Length == 0 ? Path.Combine(cluster._runDir, "tls") : tlsDir));
            // What every role is started with: the cluster's token (over its TLS when it has one), and --verbose when asked.
            string[] common = ["--" + Commands.ClusterTokenArgs.Flag, cluster.TokenPath,
                .. cluster.Token.Tls is { } tls ? ["--" + Commands.ClusterTokenArgs.TlsFlag, tls.Directory] : Array.Empty<string>(),
                .. layout.Verbose ? ["--verbose"] : Array.Empty<string>()];
            // Every role shares this machine's cores. An attention node waits while its rows are with the expert nodes
            // and they wait while it computes attention, so it keeps every core; the expert nodes, which compute at
            // the same time, split them. More kernel threads than cores cost a cluster on 2 cores up to a third of
            // its tokens/s (bench cluster --expert-threads).
            int expertThreads = layout.ExpertThreads ?? Math.Max(1, Environment.ProcessorCount / experts.Length);
            string[] locked = layout.LockWeights ? ["--lock-weights"] : [];
            for (int i = 0; i < experts.Length; i++)
            {
                ExpertNodeAddress node = experts[i];
                string httpPort = Invariant(ports[experts.Length + i]);
                cluster.ExpertNodes.Add((node.Id, node.Endpoint, $"http://127.0.0.1:{httpPort}/metrics"));
                // --join: a node drained by a live change and then restarted finds the shared plan file without it,
                // and should wait with no slots (to be added back) rather than fail in a loop.
                cluster.Spawn(node.Id, ["serve", "expert", "--model", layout.ModelDir, "--plan", cluster.PlanPath, "--node-id", node.Id,
                    "--port", node.Endpoint.Split(':')[1], "--http-port", httpPort, "--join", "--" + Commands.KernelThreadsArg.Flag, Invariant(expertThreads), .. locked, .. common]);
            }
            int next = 2 * layout.ExpertNodes;
            string[] settings = [.. AttentionSettings(layout), .. locked, .. common];
            foreach (var (role, count) in new[] { ("prefill", layout.PrefillNodes), ("decode", layout.DecodeNodes), ("both", layout.AttentionNodes) })
                for (int i = 0; i < count; i++)
                {
                    string id = $"{(role == "both" ? "attention" : role)}-{i}", port = Invariant(ports[next++]), httpPort = Invariant(ports[next++]);
                    cluster.AttentionNodes.Add((id, role, $"127.0.0.1:{port}", $"http://127.0.0.1:{httpPort}"));
                    // Role both is the node's default.
                    string[] roleArgs = role == "both" ? [] : ["--role", role];
                    cluster.Spawn(id, ["serve", "attention", "--model", layout.ModelDir, "--plan", cluster.PlanPath, "--node-id", id, "--port", port, "--http-port", httpPort,
                        .. roleArgs, .. settings]);
                }
            cluster.Spawn("gateway", ["serve", "gateway", "--model", layout.ModelDir, .. cluster.GatewayNodeLists(),
                "--port", Invariant(layout.HttpPort), "--grpc-port", Invariant(layout.GrpcPort),
                .. layout.DefaultMaxTokens is { } max ? new[] { "--default-max-tokens", Invariant(max) } : [],
                .. layout.RebalanceSeconds is { } every ? new[] { "--rebalance-interval", every.ToString(System.Globalization.CultureInfo.InvariantCulture) } : [],
                .. layout.RebalanceThreshold is { } skew ? new[] { "--rebalance-threshold", skew.ToString(System.Globalization.CultureInfo.InvariantCulture) } : [], .. common]);
            cluster.HttpEndpoint = $"http://127.0.0.1:{layout.HttpPort}";
            cluster.GrpcEndpoint = $"127.0.0.1:{layout.GrpcPort}";

            Task<ChildProcess> died = cluster.FirstExitAsync();
            Task up = cluster.WaitUpAsync(cancel);
            if (await Task.WhenAny(up, died).ConfigureAwait(false) == died) throw new CliException(PostMortem(await died.ConfigureAwait(false)));
            await up.ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The token of <see cref="ClusterLayout.ClusterTokenPath"/> (written there when the file is new), or a fresh one in the run's folder.</summary>
    private static (string, ClusterToken) TokenFor(ClusterLayout layout, string runDir)
    {
        string path = layout.ClusterTokenPath ?? Path.Combine(runDir, "cluster-token");
        if (File.Exists(path))
        {
            try { return (path, ClusterToken.Load(path)!); }
            catch (FormatException e) { throw new CliException($"--{Commands.ClusterTokenArgs.Flag}: {e.Message}"); }
        }
        ClusterToken token = ClusterToken.Generate();
        token.Save(path);
        return (path, token);
    }

    /// <summary>The TLS kept in <paramref name="dir"/>, generated there when it holds none yet.</summary>
    private static ClusterTls TlsFor(string dir) => Commands.ClusterTokenArgs.Read(Commands.ClusterTokenArgs.TlsFlag,
        () => File.Exists(Path.Combine(dir, ClusterTls.CertificateFile)) ? ClusterTls.Load(dir)! : ClusterTls.Generate(dir));

    /// <summary>What every attention node is started with besides its id, port and role.</summary>
    private static List<string> AttentionSettings(ClusterLayout layout)
    {
        List<string> args = ["--dispatch", layout.Dispatch.Name(), "--max-batch", Invariant(layout.MaxBatch)];
        args.AddRange(layout.NodeSettings.ToArgs());
        return args;
    }

    /// <summary>The gateway's --attention-nodes, --prefill-nodes and --decode-nodes, each only when it lists a node.</summary>
    private List<string> GatewayNodeLists()
    {
        var args = new List<string>();
        foreach (var (role, option) in new[] { ("both", "--attention-nodes"), ("prefill", "--prefill-nodes"), ("decode", "--decode-nodes") })
        {
            string endpoints = string.Join(',', AttentionNodes.Where(n => n.Role == role).Select(n => n.Endpoint));
            if (endpoints.Length > 0) args.AddRange([option, endpoints]);
        }
        return args;
    }

    private static string Invariant(long n) => n.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private void Spawn(string name, string[] args)
    {
        _children.Add(ChildProcess.Start(name, args, echoLogs: true));
        _args.Add(args);
        _restarts.Add(0);
    }

    /// <summary>
    /// Restarts every child that exits, with the same arguments (so on the same ports), after a backoff that doubles
    /// from 1 s to 30 s while it keeps dying and starts over once it has run for a minute; runs until
    /// <paramref name="cancel"/>. The other roles serve on meanwhile: the attention nodes send a dead expert node's
    /// rows to replicas and probe it back, the gateway routes around a dead attention node.
    /// </summary>
    public async Task SuperviseAsync(CancellationToken cancel)
    {
        var started = _children.Select(_ => Stopwatch.StartNew()).ToList();
        var backoff = _children.Select(_ => FirstBackoff).ToList();
        while (true)
        {
            Task[] exits = [.. _children.Select(c => c.Exited)];
            Task exited = await Task.WhenAny(exits).WaitAsync(cancel).ConfigureAwait(false);
            int i = Array.IndexOf(exits, exited);
            ChildProcess dead = _children[i];
            if (started[i].Elapsed >= HealthyRun) backoff[i] = FirstBackoff;
            TimeSpan delay = backoff[i];
            backoff[i] = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, delay.Ticks * 2));
            _restarts[i]++;
            Console.Error.WriteLine($"cluster up: {PostMortem(dead)}");
            Console.Error.WriteLine($"cluster up: restarting {dead.Name} in {delay.TotalSeconds:0.#} s (restart {_restarts[i]})");
            await Task.Delay(delay, cancel).ConfigureAwait(false);
            dead.Dispose();
            ChildProcess fresh = ChildProcess.Start(dead.Name, _args[i], echoLogs: true, _restarts[i]);
            _children[i] = fresh;
            started[i].Restart();
            _ = ReportBackAsync(fresh);
        }
    }

    private static async Task ReportBackAsync(ChildProcess child)
    {
        try
        {
            await child.Ready.ConfigureAwait(false);
            Console.Error.WriteLine($"cluster up: {child.Name} is back (pid {child.Id})");
        }
        catch (CliException) { /* it died again; the supervisor reports that */ }
    }

    private async Task WaitUpAsync(CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var pending = _children.ToDictionary(c => c.Ready, c => c);
        Console.Error.WriteLine($"cluster up: starting {string.Join(", ", _children.Select(c => c.Name))}");
        while (pending.Count > 0)
        {
            Task<JsonElement> done = await Task.WhenAny(pending.Keys).WaitAsync(cancel).ConfigureAwait(false);
            ChildProcess child = pending[done];
            pending.Remove(done);
            if (!done.IsCompletedSuccessfully)
            {
                await child.Exited.ConfigureAwait(false);
                throw new CliException(PostMortem(child));
            }
            JsonElement ready = done.Result;
            Console.Error.WriteLine($"cluster up: {child.Name} ready, gRPC port {ready.GetProperty("grpc_port").GetInt32()} "
                + $"({_children.Count - pending.Count}/{_children.Count}, {clock.Elapsed.TotalSeconds:F1} s)");
        }
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        while (true)
        {
            try
            {
                using var response = await http.GetAsync($"{HttpEndpoint}/readyz", cancel).ConfigureAwait(false);
                if (response.IsSuccessStatusCode) break;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) when (!cancel.IsCancellationRequested) { }
            await Task.Delay(200, cancel).ConfigureAwait(false);
        }
        Console.Error.WriteLine($"cluster up: gateway /readyz is green ({clock.Elapsed.TotalSeconds:F1} s)");
    }

    /// <summary>The first child to exit, whenever that happens.</summary>
    public async Task<ChildProcess> FirstExitAsync()
    {
        var exits = _children.ToDictionary(c => c.Exited, c => c);
        return exits[await Task.WhenAny(exits.Keys).ConfigureAwait(false)];
    }

    public static string PostMortem(ChildProcess child)
    {
        string[] lines = child.LastLogLines();
        string tail = lines.Length == 0 ? " (it wrote no log lines)" : ", its last log lines:\n  " + string.Join("\n  ", lines);
        return $"{child.Name} (pid {child.Id}) exited with code {child.ExitCode}{tail}";
    }

    /// <summary>The repository root (Cluster.sln) above the CLI's binaries, else above the working directory.</summary>
    public static string? RepositoryRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Cluster.sln"))) return d.FullName;
        return null;
    }

    public async ValueTask DisposeAsync()
    {
        // Front to back: the gateway, then the attention nodes, then the expert nodes, so that no role watches the
        // ones it calls go away first and logs them as lost.
        bool IsExpert(ChildProcess c) => ExpertNodes.Exists(n => n.Id == c.Name);
        foreach (Func<ChildProcess, bool> tier in new Func<ChildProcess, bool>[] { c => c.Name == "gateway", c => c.Name != "gateway" && !IsExpert(c), IsExpert })
            await Task.WhenAll(_children.Where(tier).Select(c => c.StopAsync(StopGrace))).ConfigureAwait(false);
        foreach (ChildProcess c in _children)
        {
            await c.Exited.ConfigureAwait(false);
            c.Dispose();
        }
        try { Directory.Delete(_runDir, true); }
        catch (IOException) { }
    }
}
