using System.Net.Security;

namespace Cluster.Transport;

/// <summary>Settings of a channel to one peer; the defaults are what the roles use.</summary>
public sealed class GrpcClientOptions
{
    public int MaxReceiveMessageSize { get; set; } = GrpcServerOptions.DefaultMaxReceiveMessageSize;
    /// <summary>Null means unlimited, as in other gRPC implementations.</summary>
    public int? MaxSendMessageSize { get; set; }
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);
    /// <summary>Connections are pinged this often so that dead peers are noticed and middleboxes keep them open.</summary>
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(60);
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(20);
    /// <summary>
    /// After a peer's connection fails, calls fail fast until the next connect attempt; attempts start this soon and
    /// back off to <see cref="MaxReconnectBackoff"/>. Grpc.Net.Client's defaults (1 s growing to 120 s) would keep a
    /// restarted node out of use for minutes; peers inside the cluster come back in seconds.
    /// </summary>
    public TimeSpan InitialReconnectBackoff { get; set; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan MaxReconnectBackoff { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>
    /// The deadline of a unary call whose caller set none, so that no call waits forever on a peer that stopped
    /// answering. Streams carry their caller's deadline (a request's) or none (the node-lifetime Dispatch streams).
    /// </summary>
    public TimeSpan DefaultUnaryDeadline { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>For https addresses: how to check the server's certificate (null: the system's trust store).</summary>
    public RemoteCertificateValidationCallback? ServerCertificateValidation { get; set; }
    /// <summary>The cluster's credential, put on every call; null for peers outside the cluster (the public API).</summary>
    public ClusterToken? ClusterToken { get; set; }
    /// <summary>Retry, attempt timeout and circuit breaker for unary calls; null turns them off. Streams never use them.</summary>
    public GrpcResilienceOptions? Resilience { get; set; } = new();
    /// <summary>The methods retried on UNAVAILABLE (full names); by default those the protos mark free of side effects.</summary>
    public IReadOnlySet<string> IdempotentMethods { get; set; } = Transport.IdempotentMethods.All;
}
