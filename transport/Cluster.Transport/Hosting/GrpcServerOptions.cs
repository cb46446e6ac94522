using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Cluster.Transport;

/// <summary>What every gRPC-serving role sets up the same way: where it listens, message limits, logging.</summary>
public sealed class GrpcServerOptions
{
    /// <summary>gRPC's usual default; services that move tensors raise it for themselves (AddServiceOptions).</summary>
    public const int DefaultMaxReceiveMessageSize = 4 * 1024 * 1024;

    public IPAddress Address { get; set; } = IPAddress.Loopback;
    /// <summary>0 binds a free port; read it back from the listener (<see cref="GrpcServer.Port"/>).</summary>
    public int Port { get; set; }
    /// <summary>When set, the listener speaks TLS (h2 negotiated by ALPN); otherwise cleartext HTTP/2 with prior knowledge.</summary>
    public X509Certificate2? Certificate { get; set; }
    public int MaxReceiveMessageSize { get; set; } = DefaultMaxReceiveMessageSize;
    /// <summary>Null means unlimited, as in other gRPC implementations.</summary>
    public int? MaxSendMessageSize { get; set; }
    /// <summary>"gzip" compresses every response for clients that accept it; null compresses only replies to compressed requests.</summary>
    public string? ResponseCompression { get; set; }
    /// <summary>When set, every service but health, reflection and <see cref="OpenServices"/> refuses callers without it.</summary>
    public ClusterToken? ClusterToken { get; set; }
    /// <summary>Full service names (package.Service) a role serves to callers outside the cluster, e.g. the public API.</summary>
    public IReadOnlyCollection<string> OpenServices { get; set; } = [];
    public LogLevel MinimumLogLevel { get; set; } = LogLevel.Warning;
}
