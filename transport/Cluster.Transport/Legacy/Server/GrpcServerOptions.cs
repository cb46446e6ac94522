using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Cluster.Transport.Legacy;

/// <summary>Settings of the server side: where it listens and the per-call limits.</summary>
public sealed class GrpcServerOptions
{
    public IPAddress Address { get; set; } = IPAddress.Loopback;
    /// <summary>0 binds a free port; read it back from <see cref="GrpcServer.Port"/>.</summary>
    public int Port { get; set; }
    /// <summary>When set, the server speaks TLS (HTTP/2 negotiated by ALPN); otherwise cleartext HTTP/2 with prior knowledge.</summary>
    public X509Certificate2? Certificate { get; set; }
    public int MaxReceiveMessageSize { get; set; } = GrpcProtocol.DefaultMaxReceiveMessageSize;
    /// <summary>Null means unlimited, as in other gRPC implementations.</summary>
    public int? MaxSendMessageSize { get; set; }
    /// <summary>"gzip" compresses every response for clients that accept it; null compresses only replies to compressed requests.</summary>
    public string? ResponseCompression { get; set; }
    public LogLevel MinimumLogLevel { get; set; } = LogLevel.Warning;
}
