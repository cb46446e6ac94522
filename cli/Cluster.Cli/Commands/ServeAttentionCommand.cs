using Cluster.AttentionNode;
using Cluster.Protos.V1;
using Microsoft.Extensions.Logging;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster serve attention</c>: one attention node in this process, until Ctrl-C or SIGTERM.</summary>
public static class ServeAttentionCommand
{
    public const string Usage = "serve attention --model DIR [--role prefill|decode|both] [--host 127.0.0.1] [--port N] [--http-port N] [--node-id NAME] [--plan FILE] "
        + "[--dispatch bf16|fp8|f32] [--max-batch N] [--drain-seconds 30] [--lock-weights] " + KernelThreadsArg.Usage + " " + AttentionNodeSettings.Usage + " " + ClusterTokenArgs.RoleUsage + " " + DiscoveryArgs.Usage + " [--verbose]";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string dir = args.Required("model");
        string role = args.String("role", "both");
        var options = new AttentionOptions
        {
            ModelDir = dir,
            Role = ParseRole(role),
            Host = args.String("host", "127.0.0.1"),
            Port = args.Int("port", 0, 0, 65535),
            HttpPort = args.Has("http-port") ? args.Int("http-port", 0, 0, 65535) : null,
            NodeId = args.String("node-id", "attention-0"),
            PlanPath = args.String("plan"),
            Dispatch = ParseDispatch(args.String("dispatch", "bf16")),
            MaxBatch = args.Int("max-batch", 32, 1, 1024),
            DrainTimeout = TimeSpan.FromSeconds(args.Int("drain-seconds", 30, 0, 3600)),
            ReserveKvCache = true,
            Restarts = Supervision.ChildProcess.RestartsOfThisProcess(),
            LogLevel = args.Flag("verbose") ? LogLevel.Information : LogLevel.Warning,
        };
        AttentionNodeSettings settings = AttentionNodeSettings.Parse(args);
        int? threads = KernelThreadsArg.Parse(args);
        bool lockWeights = args.Flag("lock-weights");
        DiscoveryArgs discovery = DiscoveryArgs.Parse(args);
        Cluster.Transport.ClusterToken? token = ClusterTokenArgs.ParseForRole(args);
        args.RejectUnknown();
        KernelThreadsArg.Apply(threads);
        options = options with
        {
            PrefillChunk = settings.PrefillChunk ?? options.PrefillChunk,
            KvCacheBytes = settings.KvCacheBytes ?? options.KvCacheBytes,
            KvBlockSize = settings.KvBlockSize ?? options.KvBlockSize,
            KvCacheFormat = settings.KvCacheFormat ?? options.KvCacheFormat,
            PrefixCache = options.PrefixCache && !settings.NoPrefixCache,
            MicroBatchOverlap = settings.MicroBatchOverlap,
            LockWeights = lockWeights,
            ClusterToken = token,
        };
        if (!Directory.Exists(dir)) throw new CliException($"{dir}: model directory not found");
        if (options.PlanPath is { } plan && !File.Exists(plan)) throw new CliException($"{plan}: plan file not found");
        // The gateway follows each pool by its service name: the role picks the pool.
        var meta = new Dictionary<string, string> { ["role"] = role, ["node_id"] = options.NodeId };
        string service = role switch { "prefill" => "cluster-prefill", "decode" => "cluster-decode", _ => "cluster-attention" };
        return await discovery.RunAsync(service, options.NodeId, options.Host, options.Port, meta, () =>
        {
            ClusterTokenArgs.WarnIfOpen(token, "attention", options.Host);
            return AttentionHost.RunAsync(options, cancel);
        }, cancel);
    }

    private static NodeRole ParseRole(string name)
    {
        try { return NodeRoles.Parse(name); }
        catch (ArgumentException e) { throw new CliException("--role: " + e.Message); }
    }

    /// <summary>--dispatch as a one-line CLI error when it names no format.</summary>
    internal static DispatchFormat ParseDispatch(string name)
    {
        try { return DispatchFormats.Parse(name); }
        catch (FormatException e) { throw new CliException(e.Message); }
    }
}
