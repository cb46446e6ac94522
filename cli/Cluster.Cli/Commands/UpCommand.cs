using Cluster.AttentionNode;
using Cluster.Cli.Supervision;

namespace Cluster.Cli.Commands;

/// <summary>
/// <c>cluster up</c>: every role as its own process on 127.0.0.1 until Ctrl-C or SIGTERM. A child that dies is
/// reported with its last log lines and restarted with backoff while the rest serve on; with --fail-fast the rest
/// are stopped instead (exit code 1).
/// </summary>
public static class UpCommand
{
    public const string Usage = "up [--model DIR | --preset small] [--port 8000] [--grpc-port 8001] [--attention-nodes 1] "
        + "[--prefill-nodes N --decode-nodes M] [--expert-nodes 2] [--expert-replicas 1] [--redundant-experts 2] [--expert-threads N] [--lock-weights] [--dispatch bf16|fp8|f32] [--expert-load FILE] "
        + "[--max-batch 32] " + AttentionNodeSettings.Usage + " [--default-max-tokens N] [--rebalance-interval SECONDS [--rebalance-threshold 1.2]] " + ClusterTokenArgs.Usage + " [--cluster-tls | --cluster-tls-dir DIR] [--fail-fast] [--verbose]";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        ClusterLayout layout = ParseLayout(args, cancel);
        bool failFast = args.Flag("fail-fast");
        args.RejectUnknown();
        ClusterSupervisor cluster;
        try { cluster = await ClusterSupervisor.StartAsync(layout, cancel); }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            Console.Error.WriteLine("cluster up: stopped before the cluster was ready");
            return 0;
        }
        await using (cluster)
        {
            PrintEndpoints(cluster);
            if (!failFast)
            {
                try { await cluster.SuperviseAsync(cancel); }
                catch (OperationCanceledException) when (cancel.IsCancellationRequested) { }
                Console.Error.WriteLine("cluster up: stopping every node");
                return 0;
            }
            Task<ChildProcess> died = cluster.FirstExitAsync();
            try { await died.WaitAsync(cancel); }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                Console.Error.WriteLine("cluster up: stopping every node");
                return 0;
            }
            Console.Error.WriteLine($"cluster up: {ClusterSupervisor.PostMortem(await died)}");
            Console.Error.WriteLine("cluster up: stopping the other nodes");
            return 1;
        }
    }

    /// <summary>The options <c>cluster up</c> and <c>cluster demo</c> share; creates the preset model when no --model is given.</summary>
    public static ClusterLayout ParseLayout(CliArgs args, CancellationToken cancel)
    {
        string? model = args.String("model");
        string? preset = args.String("preset");
        if (model is not null && preset is not null) throw new CliException("give --model or --preset, not both");
        int port = args.Int("port", 8000, 1, 65535), grpcPort = args.Int("grpc-port", 8001, 1, 65535);
        if (port == grpcPort) throw new CliException($"--port and --grpc-port are both {port}");
        (int attention, int prefill, int decode) = ParseAttentionCounts(args);
        int experts = args.Int("expert-nodes", 2, 1, 64);
        // Replicas of one expert never share a node, so one expert node leaves no room for any.
        int replicas = args.Int("expert-replicas", 1, 1, experts);
        int redundant = args.Int("redundant-experts", replicas == experts ? 0 : 2, 0);
        int? expertThreads = args.Has("expert-threads") ? args.Int("expert-threads", 0, 1, 1024) : null;
        bool lockWeights = args.Flag("lock-weights");
        DispatchFormat dispatch = ServeAttentionCommand.ParseDispatch(args.String("dispatch", "bf16"));
        string? load = args.String("expert-load");
        if (load is not null && !File.Exists(load)) throw new CliException($"{load}: expert-load file not found");
        int maxBatch = args.Int("max-batch", 32, 1, 1024);
        AttentionNodeSettings settings = AttentionNodeSettings.Parse(args);
        int? defaultMaxTokens = args.Has("default-max-tokens") ? args.Int("default-max-tokens", 0, 1) : null;
        double? rebalanceSeconds = args.Has("rebalance-interval") ? args.Double("rebalance-interval", 0, 1, 86400) : null;
        double? rebalanceThreshold = args.Has("rebalance-threshold") ? args.Double("rebalance-threshold", 0, 1, 100) : null;
        if (rebalanceThreshold is not null && rebalanceSeconds is null) throw new CliException("--rebalance-threshold goes with --rebalance-interval");
        bool verbose = args.Flag("verbose");
        string? tokenPath = args.String(ClusterTokenArgs.Flag);
        // --cluster-tls: a CA and certificate generated into the run's folder; --cluster-tls-dir DIR: kept there.
        string? tlsDir = args.String(ClusterTokenArgs.TlsFlag) is { } dir ? Path.GetFullPath(dir) : args.Flag("cluster-tls") ? "" : null;
        if (model is not null && !File.Exists(Path.Combine(model, "config.json"))) throw new CliException($"{model}: no config.json (not a model directory)");
        model ??= PresetModel(preset ?? "small", cancel);
        return new ClusterLayout
        {
            ModelDir = Path.GetFullPath(model),
            HttpPort = port,
            GrpcPort = grpcPort,
            AttentionNodes = attention,
            PrefillNodes = prefill,
            DecodeNodes = decode,
            ExpertNodes = experts,
            RedundantExperts = redundant,
            ExpertReplicas = replicas,
            ExpertThreads = expertThreads,
            LockWeights = lockWeights,
            Dispatch = dispatch,
            ExpertLoadPath = load,
            MaxBatch = maxBatch,
            NodeSettings = settings,
            DefaultMaxTokens = defaultMaxTokens,
            RebalanceSeconds = rebalanceSeconds,
            RebalanceThreshold = rebalanceThreshold,
            Verbose = verbose,
            ClusterTokenPath = tokenPath is null ? null : Path.GetFullPath(tokenPath),
            ClusterTlsDir = tlsDir,
        };
    }

    /// <summary>
    /// Nodes of role both, prefill and decode. Prefill and decode nodes come together; with them there is no node of
    /// role both unless --attention-nodes asks for some, without them one by default.
    /// </summary>
    private static (int Attention, int Prefill, int Decode) ParseAttentionCounts(CliArgs args)
    {
        bool split = args.Has("prefill-nodes") || args.Has("decode-nodes");
        if (split && !(args.Has("prefill-nodes") && args.Has("decode-nodes")))
            throw new CliException("--prefill-nodes and --decode-nodes go together");
        int prefill = split ? args.Int("prefill-nodes", 0, 1, 64) : 0, decode = split ? args.Int("decode-nodes", 0, 1, 64) : 0;
        int attention = args.Int("attention-nodes", split ? 0 : 1, split ? 0 : 1, 64);
        return (attention, prefill, decode);
    }

    /// <summary>models/PRESET under the repository root, written once by the same code as <c>cluster model init</c>.</summary>
    private static string PresetModel(string preset, CancellationToken cancel)
    {
        string root = ClusterSupervisor.RepositoryRoot() ?? throw new CliException("no repository root (Cluster.sln) above the CLI or the working directory: give --model DIR");
        string dir = Path.Combine(root, "models", preset);
        if (File.Exists(Path.Combine(dir, "config.json"))) return dir;
        Console.Error.WriteLine($"cluster up: creating the {preset} preset in {dir} (once)");
        // Written beside the final place and moved there only when complete, so an interrupted write is never reused.
        string partial = dir + ".partial";
        int rc = ModelInitCommand.Run(new CliArgs(["--preset", preset, "--out", partial, "--force"]), cancel).GetAwaiter().GetResult();
        if (rc != 0) throw new CliException($"creating the {preset} preset failed");
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.Move(partial, dir);
        return dir;
    }

    public static void PrintEndpoints(ClusterSupervisor cluster)
    {
        Console.WriteLine($"OpenAI API:      {cluster.HttpEndpoint}/v1  (GET /v1/models, POST /v1/chat/completions, /readyz)");
        Console.WriteLine($"gRPC Inference:  {cluster.GrpcEndpoint}");
        foreach (var (id, role, endpoint, stats) in cluster.AttentionNodes) Console.WriteLine($"{id,-16} {role + " attention",-17} {endpoint,-21} {stats}/metrics");
        foreach (var (id, endpoint, metrics) in cluster.ExpertNodes) Console.WriteLine($"{id,-16} {"expert",-17} {endpoint,-21} {metrics}");
        Console.WriteLine($"cluster token:   {cluster.TokenPath}  (internal services ask for it: cluster experts ... --{ClusterTokenArgs.Flag} {cluster.TokenPath})");
        if (cluster.Token.Tls is { } tls) Console.WriteLine($"cluster TLS:     {tls.Directory}  (internal gRPC ports speak TLS; their CA: {Path.Combine(tls.Directory, Cluster.Transport.ClusterTls.CaFile)})");
        Console.WriteLine("Ctrl-C stops the cluster.");
        Console.Out.Flush();
    }
}
