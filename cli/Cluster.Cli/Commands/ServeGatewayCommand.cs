using System.Net;
using System.Security.Cryptography.X509Certificates;
using Cluster.Gateway;
using Cluster.Transport.Discovery;
using Microsoft.Extensions.Logging;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster serve gateway</c>: the OpenAI-compatible HTTP API and the Inference gRPC API in this process, until Ctrl-C or SIGTERM.</summary>
public static class ServeGatewayCommand
{
    public const string Usage = "serve gateway --model DIR [--attention-nodes HOST:PORT[,HOST:PORT...]] [--prefill-nodes HOST:PORT,... --decode-nodes HOST:PORT,...] "
        + "[--host 127.0.0.1] [--port 8000] [--grpc-port 8001] [--node-id NAME] [--model-id NAME] [--max-queue N] [--max-queued-requests 1024] [--max-migrations 2] "
        + "[--default-max-tokens 4096] [--max-model-len N] [--max-body-bytes N] [--tls-cert PEM --tls-key PEM] [--api-keys-file FILE] " + ClusterTokenArgs.RoleUsage + " " + DiscoveryArgs.Usage
        + " [--attention-service NAME] [--prefill-service NAME --decode-service NAME] [--resolve-interval SECONDS] [--drain-seconds 30] "
        + "[--rebalance-interval SECONDS [--rebalance-threshold 1.2]] [--verbose]";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string dir = args.Required("model");
        string[] attention = Endpoints(args, "attention-nodes"), prefill = Endpoints(args, "prefill-nodes"), decode = Endpoints(args, "decode-nodes");
        string host = args.String("host", "127.0.0.1");
        int port = args.Int("port", 8000, 0, 65535);
        int grpcPort = args.Int("grpc-port", 8001, 0, 65535);
        string nodeId = args.String("node-id", "gateway");
        string? modelId = args.String("model-id");
        int maxQueue = args.Int("max-queue", 256, 1, 1_000_000);
        int maxQueued = args.Int("max-queued-requests", 1024, 0, 1_000_000);
        int maxMigrations = args.Int("max-migrations", 2, 0, 16);
        int defaultMaxTokens = args.Int("default-max-tokens", 4096, 1);
        int drainSeconds = args.Int("drain-seconds", 30, 0, 3600);
        int? maxModelLen = args.Has("max-model-len") ? args.Int("max-model-len", 0, 2) : null;
        long maxBody = args.Long("max-body-bytes", 8 << 20, 1024);
        string? cert = args.String("tls-cert"), key = args.String("tls-key");
        string? keysFile = args.String("api-keys-file");
        bool verbose = args.Flag("verbose");
        DiscoveryArgs discovery = DiscoveryArgs.Parse(args);
        string? attentionService = args.String("attention-service"), prefillService = args.String("prefill-service"), decodeService = args.String("decode-service");
        double resolveSeconds = args.Double("resolve-interval", 5, 0.05, 3600);
        Cluster.Transport.ClusterToken? token = ClusterTokenArgs.ParseForRole(args);
        Cluster.ExpertNode.Control.RebalanceSchedule? rebalance = args.Has("rebalance-interval")
            ? new(TimeSpan.FromSeconds(args.Double("rebalance-interval", 0, 1, 86400)), args.Double("rebalance-threshold", 1.2, 1, 100))
            : null;
        if (rebalance is null && args.Has("rebalance-threshold")) throw new CliException("--rebalance-threshold goes with --rebalance-interval");
        args.RejectUnknown();

        if (!IPAddress.TryParse(host, out IPAddress? address)) throw new CliException($"--host: '{host}' is not an IP address");
        if (!Directory.Exists(dir)) throw new CliException($"{dir}: model directory not found");
        if ((cert is null) != (key is null)) throw new CliException("--tls-cert and --tls-key go together");
        if (port != 0 && port == grpcPort) throw new CliException($"--port and --grpc-port are both {port}");
        GatewayDiscovery? nodes = null;
        if (discovery.Kind == "static")
        {
            if ((attentionService ?? prefillService ?? decodeService) is not null) throw new CliException("--attention-service, --prefill-service and --decode-service need --discovery kubernetes or consul");
            if (args.Has("resolve-interval")) throw new CliException("--resolve-interval goes with --discovery kubernetes");
            if ((prefill.Length == 0) != (decode.Length == 0)) throw new CliException("--prefill-nodes and --decode-nodes go together");
            if (attention.Length == 0 && prefill.Length == 0) throw new CliException("no attention node: give --attention-nodes, or --prefill-nodes and --decode-nodes");
        }
        else
        {
            if (attention.Length + prefill.Length + decode.Length > 0) throw new CliException($"--attention-nodes, --prefill-nodes and --decode-nodes are for --discovery static; with {discovery.Kind} give services");
            if ((prefillService is null) != (decodeService is null)) throw new CliException("--prefill-service and --decode-service go together");
            nodes = discovery.Kind == "consul"
                ? ConsulPools(discovery.Consul!, attentionService, prefillService, decodeService)
                : DnsPools(attentionService, prefillService, decodeService, TimeSpan.FromSeconds(resolveSeconds));
        }

        X509Certificate2? certificate = null;
        if (cert is not null)
        {
            try { certificate = X509Certificate2.CreateFromPemFile(cert, key); }
            catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException)
            {
                throw new CliException($"--tls-cert {cert} / --tls-key {key}: {e.Message}");
            }
        }

        // Without a file the keys come from CLUSTER_API_KEYS (a Kubernetes Secret); neither: the APIs are open.
        Cluster.Gateway.Security.ApiKeys apiKeys;
        try { apiKeys = Cluster.Gateway.Security.ApiKeys.Load(keysFile); }
        catch (Exception e) when (e is FormatException or IOException) { throw new CliException(e.Message); }

        var options = new GatewayOptions
        {
            ModelDir = dir,
            Discovery = nodes,
            AttentionNodes = attention,
            PrefillNodes = prefill,
            DecodeNodes = decode,
            Host = address,
            HttpPort = port,
            GrpcPort = grpcPort,
            NodeId = nodeId,
            ModelId = modelId,
            MaxQueue = maxQueue,
            MaxQueuedRequests = maxQueued,
            MaxMigrations = maxMigrations,
            DrainTimeout = TimeSpan.FromSeconds(drainSeconds),
            DefaultMaxTokens = defaultMaxTokens,
            MaxModelLen = maxModelLen,
            MaxRequestBodyBytes = maxBody,
            Certificate = certificate,
            ApiKeys = apiKeys,
            MinimumLogLevel = verbose ? LogLevel.Information : LogLevel.Warning,
            ClusterToken = token,
            Restarts = Supervision.ChildProcess.RestartsOfThisProcess(),
            Rebalance = rebalance,
        };
        var meta = new Dictionary<string, string> { ["role"] = "gateway", ["node_id"] = nodeId };
        try { return await discovery.RunAsync("cluster-gateway", nodeId, host, grpcPort, meta, () =>
            {
                ClusterTokenArgs.WarnIfOpen(token, "gateway", host);
                return GatewayHost.RunAsync(options, cancel);
            }, cancel); }
        catch (System.Text.Json.JsonException e) { throw new CliException($"{dir}: {e.Message}"); }
    }

    /// <summary>Consul: each pool is a service name; without names the three default ones the roles register as are all followed.</summary>
    private static GatewayDiscovery ConsulPools(Uri consul, string? attention, string? prefill, string? decode)
    {
        // One agent client for the process: it lives as long as the gateway, which ends with the process.
        var agent = new ConsulAgent(consul);
        bool named = (attention ?? prefill ?? decode) is not null;
        string? both = named ? attention : "cluster-attention";
        (prefill, decode) = named ? (prefill, decode) : ("cluster-prefill", "cluster-decode");
        return new GatewayDiscovery
        {
            Attention = both is null ? null : new ConsulDiscovery(agent, both),
            Prefill = prefill is null ? null : new ConsulDiscovery(agent, prefill),
            Decode = decode is null ? null : new ConsulDiscovery(agent, decode),
        };
    }

    /// <summary>Kubernetes: each pool is a headless Service's DNS name and gRPC port, re-resolved every interval.</summary>
    private static GatewayDiscovery DnsPools(string? attention, string? prefill, string? decode, TimeSpan interval)
    {
        if ((attention ?? prefill) is null) throw new CliException("--discovery kubernetes needs --attention-service HOST:PORT, or --prefill-service and --decode-service (headless Services' DNS names)");
        IPeerDiscovery? Dns(string option, string? name)
        {
            if (name is null) return null;
            try { return new DnsDiscovery(name, interval); }
            catch (FormatException) { throw new CliException($"--{option}: '{name}' is not HOST:PORT (a headless Service's DNS name and its gRPC port)"); }
        }
        return new GatewayDiscovery { Attention = Dns("attention-service", attention), Prefill = Dns("prefill-service", prefill), Decode = Dns("decode-service", decode) };
    }

    /// <summary>A comma-separated list of endpoints; empty when the option is not given, an error when it is given empty.</summary>
    private static string[] Endpoints(CliArgs args, string name)
    {
        if (args.String(name) is not { } list) return [];
        string[] endpoints = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return endpoints.Length > 0 ? endpoints : throw new CliException($"--{name} lists no node");
    }
}
