using System.Net;
using System.Security.Cryptography.X509Certificates;
using Cluster.Gateway;
using Microsoft.Extensions.Logging;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster serve gateway</c>: the OpenAI-compatible HTTP API and the Inference gRPC API in this process, until Ctrl-C or SIGTERM.</summary>
public static class ServeGatewayCommand
{
    public const string Usage = "serve gateway --model DIR [--attention-nodes HOST:PORT[,HOST:PORT...]] [--prefill-nodes HOST:PORT,... --decode-nodes HOST:PORT,...] "
        + "[--host 127.0.0.1] [--port 8000] [--grpc-port 8001] [--node-id NAME] [--model-id NAME] [--max-queue N] [--max-queued-requests 1024] "
        + "[--default-max-tokens 4096] [--max-model-len N] [--max-body-bytes N] [--tls-cert PEM --tls-key PEM] [--verbose]";

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
        int defaultMaxTokens = args.Int("default-max-tokens", 4096, 1);
        int? maxModelLen = args.Has("max-model-len") ? args.Int("max-model-len", 0, 2) : null;
        long maxBody = args.Long("max-body-bytes", 8 << 20, 1024);
        string? cert = args.String("tls-cert"), key = args.String("tls-key");
        bool verbose = args.Flag("verbose");
        args.RejectUnknown();

        if (!IPAddress.TryParse(host, out IPAddress? address)) throw new CliException($"--host: '{host}' is not an IP address");
        if (!Directory.Exists(dir)) throw new CliException($"{dir}: model directory not found");
        if ((cert is null) != (key is null)) throw new CliException("--tls-cert and --tls-key go together");
        if (port != 0 && port == grpcPort) throw new CliException($"--port and --grpc-port are both {port}");
        if ((prefill.Length == 0) != (decode.Length == 0)) throw new CliException("--prefill-nodes and --decode-nodes go together");
        if (attention.Length == 0 && prefill.Length == 0) throw new CliException("no attention node: give --attention-nodes, or --prefill-nodes and --decode-nodes");

        X509Certificate2? certificate = null;
        if (cert is not null)
        {
            try { certificate = X509Certificate2.CreateFromPemFile(cert, key); }
            catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException)
            {
                throw new CliException($"--tls-cert {cert} / --tls-key {key}: {e.Message}");
            }
        }

        var options = new GatewayOptions
        {
            ModelDir = dir,
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
            DefaultMaxTokens = defaultMaxTokens,
            MaxModelLen = maxModelLen,
            MaxRequestBodyBytes = maxBody,
            Certificate = certificate,
            MinimumLogLevel = verbose ? LogLevel.Information : LogLevel.Warning,
        };
        try { return await GatewayHost.RunAsync(options, cancel); }
        catch (System.Text.Json.JsonException e) { throw new CliException($"{dir}: {e.Message}"); }
    }

    /// <summary>A comma-separated list of endpoints; empty when the option is not given, an error when it is given empty.</summary>
    private static string[] Endpoints(CliArgs args, string name)
    {
        if (args.String(name) is not { } list) return [];
        string[] endpoints = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return endpoints.Length > 0 ? endpoints : throw new CliException($"--{name} lists no node");
    }
}
