using Cluster.ExpertNode.Host;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster serve expert</c>: one expert node in this process, until Ctrl-C or SIGTERM.</summary>
public static class ServeExpertCommand
{
    public const string Usage = "serve expert --model DIR --plan FILE --node-id NAME [--host 127.0.0.1] [--port N] [--http-port N] [--join] [--lock-weights] " + KernelThreadsArg.Usage + " " + ClusterTokenArgs.RoleUsage + " " + DiscoveryArgs.Usage + " [--verbose]";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        var options = new ExpertHostOptions
        {
            ModelDir = args.Required("model"),
            PlanPath = args.Required("plan"),
            NodeId = args.Required("node-id"),
            Host = args.String("host", "127.0.0.1"),
            Port = args.Int("port", 0, 0, 65535),
            HttpPort = args.Has("http-port") ? args.Int("http-port", 0, 1, 65535) : null,
            Join = args.Flag("join"),
            LockWeights = args.Flag("lock-weights"),
            Verbose = args.Flag("verbose"),
            Restarts = Supervision.ChildProcess.RestartsOfThisProcess(),
        };
        int? threads = KernelThreadsArg.Parse(args);
        DiscoveryArgs discovery = DiscoveryArgs.Parse(args);
        options = options with { ClusterToken = ClusterTokenArgs.ParseForRole(args) };
        args.RejectUnknown();
        KernelThreadsArg.Apply(threads);
        if (!Directory.Exists(options.ModelDir)) throw new CliException($"{options.ModelDir}: model directory not found");
        if (!File.Exists(options.PlanPath)) throw new CliException($"{options.PlanPath}: plan file not found");
        var meta = new Dictionary<string, string> { ["role"] = "expert", ["node_id"] = options.NodeId };
        return await discovery.RunAsync("cluster-expert", options.NodeId, options.Host, options.Port, meta, () =>
        {
            ClusterTokenArgs.WarnIfOpen(options.ClusterToken, "expert", options.Host);
            return ExpertHost.RunAsync(options, cancel);
        }, cancel);
    }
}
