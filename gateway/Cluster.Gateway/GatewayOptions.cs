using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Cluster.Gateway;

/// <summary>Settings of one gateway process (see <c>cluster serve gateway</c>).</summary>
public sealed class GatewayOptions
{
    /// <summary>Directory with config.json, tokenizer.json and tokenizer_config.json.</summary>
    public required string ModelDir { get; init; }
    /// <summary>The attention nodes' gRPC endpoints, "host:port" or a full http(s):// address.</summary>
    public required IReadOnlyList<string> AttentionNodes { get; init; }
    public IPAddress Host { get; init; } = IPAddress.Loopback;
    /// <summary>The OpenAI-compatible HTTP port; 0 picks a free one.</summary>
    public int HttpPort { get; init; }
    /// <summary>The cluster.v1.Inference gRPC port (cleartext HTTP/2); 0 picks a free one.</summary>
    public int GrpcPort { get; init; }
    public string NodeId { get; init; } = "gateway";
    /// <summary>The id clients name the model by; null: the model directory's name.</summary>
    public string? ModelId { get; init; }
    /// <summary>Requests in flight per attention node (running + queued there) before new ones get 429.</summary>
    public int MaxQueue { get; init; } = 256;
    /// <summary>Longest prompt + completion in tokens; null: the model's max_position_embeddings.</summary>
    public int? MaxModelLen { get; init; }
    /// <summary>Largest HTTP request body accepted (413 beyond).</summary>
    public long MaxRequestBodyBytes { get; init; } = 8 << 20;
    /// <summary>With a certificate the HTTP port speaks TLS with HTTP/1.1 and h2; without, plain HTTP/1.1.</summary>
    public X509Certificate2? Certificate { get; init; }
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Warning;
    /// <summary>How long /readyz waits for each node's health answer.</summary>
    public TimeSpan HealthTimeout { get; init; } = TimeSpan.FromSeconds(2);
}
