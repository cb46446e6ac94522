using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Cluster.Transport;

/// <summary>Kestrel set up for long-lived HTTP/2 streams of 1 MB messages, the same on every role.</summary>
public static class KestrelGrpcExtensions
{
    /// <summary>
    /// Flow-control windows large enough that a 1 MB message never waits for a WINDOW_UPDATE round trip, room for
    /// many concurrent long-lived streams per connection, and no minimum data rates (a dispatch stream idles between
    /// steps).
    /// </summary>
    public static void ConfigureGrpcLimits(this KestrelServerOptions kestrel)
    {
        kestrel.AddServerHeader = false;
        kestrel.Limits.MaxRequestBodySize = null;
        kestrel.Limits.MinRequestBodyDataRate = null;
        kestrel.Limits.MinResponseDataRate = null;
        // Room for several 1 MB messages in flight per connection before the socket loop or a writer waits.
        kestrel.Limits.MaxRequestBufferSize = 16 * 1024 * 1024;
        kestrel.Limits.MaxResponseBufferSize = 4 * 1024 * 1024;
        kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
        kestrel.Limits.Http2.InitialConnectionWindowSize = 8 * 1024 * 1024;
        kestrel.Limits.Http2.InitialStreamWindowSize = 4 * 1024 * 1024;
        kestrel.Limits.Http2.MaxFrameSize = 64 * 1024;
        kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(60);
        kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);
    }

    /// <summary>A gRPC listener: cleartext HTTP/2 only (prior knowledge), or TLS offering h2 and http/1.1 by ALPN.</summary>
    public static void ListenGrpc(this KestrelServerOptions kestrel, IPAddress address, int port, X509Certificate2? certificate, Action<ListenOptions>? bound = null) =>
        kestrel.ListenGrpc(address, port, certificate is null ? null : () => certificate, bound);

    /// <summary>A node's gRPC listener: with the cluster's TLS, each handshake serves the certificate its files hold then.</summary>
    public static void ListenGrpc(this KestrelServerOptions kestrel, IPAddress address, int port, ClusterTls? tls, Action<ListenOptions>? bound = null) =>
        kestrel.ListenGrpc(address, port, tls is null ? null : () => tls.Certificate, bound);

    private static void ListenGrpc(this KestrelServerOptions kestrel, IPAddress address, int port, Func<X509Certificate2>? certificate, Action<ListenOptions>? bound)
    {
        kestrel.Listen(address, port, listen =>
        {
            if (certificate is null) listen.Protocols = HttpProtocols.Http2;
            else
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(new Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions { ServerCertificateSelector = (_, _) => certificate() });
            }
            bound?.Invoke(listen);
        });
    }
}
