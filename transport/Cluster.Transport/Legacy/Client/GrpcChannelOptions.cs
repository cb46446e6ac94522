using System.Net.Security;

namespace Cluster.Transport.Legacy;

/// <summary>Settings of a client channel to one endpoint.</summary>
public sealed class GrpcChannelOptions
{
    public int MaxReceiveMessageSize { get; set; } = GrpcProtocol.DefaultMaxReceiveMessageSize;
    /// <summary>Null means unlimited, as in other gRPC implementations.</summary>
    public int? MaxSendMessageSize { get; set; }
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);
    /// <summary>Idle connections are pinged this often so that dead peers are noticed and middleboxes keep the connection.</summary>
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(60);
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(20);
    /// <summary>For https addresses: how to check the server's certificate (null: the system's trust store).</summary>
    public RemoteCertificateValidationCallback? ServerCertificateValidation { get; set; }
    /// <summary>Retry, timeout and circuit breaker for unary calls; null turns them off. Streaming calls never use them.</summary>
    public GrpcResilienceOptions? Resilience { get; set; } = new();
}
