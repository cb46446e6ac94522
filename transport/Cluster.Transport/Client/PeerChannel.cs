using System.Net;
using System.Security.Authentication;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;

namespace Cluster.Transport;

/// <summary>
/// The one way the roles open a channel to a peer: Grpc.Net.Client over a SocketsHttpHandler with several HTTP/2
/// connections (a connection's stream limit never queues calls), keep-alive pings, 4 MB stream windows (1 MB
/// messages never wait on a WINDOW_UPDATE round trip), and the project's interceptors: a default deadline for unary
/// calls, Polly resilience, pooled decoding of the tensor methods and the cluster's token. Generated clients take <see cref="Invoker"/>.
/// </summary>
public sealed class PeerChannel : IDisposable
{
    private readonly GrpcChannel _channel;

    private PeerChannel(Uri address, GrpcChannel channel, CallInvoker invoker)
    {
        Address = address;
        _channel = channel;
        Invoker = invoker;
    }

    public Uri Address { get; }
    public CallInvoker Invoker { get; }

    /// <summary>http://host:port speaks cleartext HTTP/2 (prior knowledge), https://host:port TLS with ALPN h2.</summary>
    public static PeerChannel ForAddress(string address, GrpcClientOptions? options = null) => ForAddress(new Uri(address), options);

    public static PeerChannel ForAddress(Uri address, GrpcClientOptions? options = null)
    {
        if (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
            throw new ArgumentException($"gRPC address '{address}' must start with http:// or https://", nameof(address));
        options ??= new GrpcClientOptions();
        ClusterTls? tls = options.ClusterToken?.Tls;
        // Plan files and discovery write host:port, which inside a cluster with TLS means TLS.
        if (tls is not null && address.Scheme == Uri.UriSchemeHttp) address = new UriBuilder(address) { Scheme = Uri.UriSchemeHttps }.Uri;
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = options.KeepAlivePingDelay,
            KeepAlivePingTimeout = options.KeepAlivePingTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            InitialHttp2StreamWindowSize = 4 * 1024 * 1024,
            ConnectTimeout = options.ConnectTimeout,
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        if (address.Scheme == Uri.UriSchemeHttps)
        {
            handler.SslOptions.EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13;
            if ((options.ServerCertificateValidation ?? (tls is null ? null : tls.Validate)) is { } validate) handler.SslOptions.RemoteCertificateValidationCallback = validate;
        }
        var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = options.MaxReceiveMessageSize,
            MaxSendMessageSize = options.MaxSendMessageSize,
            InitialReconnectBackoff = options.InitialReconnectBackoff,
            MaxReconnectBackoff = options.MaxReconnectBackoff,
        });
        // Each Intercept wraps the invoker so far: the deadline is set once, outside every retry attempt, and the
        // pooled marshallers sit next to the channel.
        CallInvoker invoker = channel.CreateCallInvoker().Intercept(PooledMethodInterceptor.Instance);
        if (options.Resilience is { } resilience) invoker = invoker.Intercept(new ResilienceInterceptor(resilience, options.IdempotentMethods));
        invoker = invoker.Intercept(new DefaultDeadlineInterceptor(options.DefaultUnaryDeadline, TimeProvider.System));
        if (options.ClusterToken is { } token) invoker = invoker.Intercept(new ClusterTokenCallInterceptor(token));
        return new PeerChannel(address, channel, invoker);
    }

    public void Dispose() => _channel.Dispose();
}
