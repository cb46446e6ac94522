using System.Net;
using System.Security.Authentication;
using Google.Protobuf;

namespace Cluster.Transport.Legacy;

/// <summary>
/// A client for one endpoint: a pool of long-lived HTTP/2 connections (more are opened when one runs out of
/// streams) and typed calls of all four kinds.
/// </summary>
public sealed class GrpcChannel : IDisposable
{
    private readonly UnaryResilience? _resilience;
    private readonly Dictionary<string, Uri> _uris = [];

    private GrpcChannel(Uri address, GrpcChannelOptions options)
    {
        Address = address;
        Options = options;
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = options.KeepAlivePingDelay,
            KeepAlivePingTimeout = options.KeepAlivePingTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            // Large receive windows so long-lived streams of big messages never wait on WINDOW_UPDATE round trips.
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
            if (options.ServerCertificateValidation is { } validate) handler.SslOptions.RemoteCertificateValidationCallback = validate;
        }
        Invoker = new HttpMessageInvoker(handler, disposeHandler: true);
        if (options.Resilience is { } r) _resilience = new UnaryResilience(r);
    }

    public Uri Address { get; }
    public GrpcChannelOptions Options { get; }
    internal HttpMessageInvoker Invoker { get; }

    /// <summary>http://host:port speaks cleartext HTTP/2 (prior knowledge), https://host:port TLS with ALPN h2.</summary>
    public static GrpcChannel ForAddress(string address, GrpcChannelOptions? options = null) =>
        ForAddress(new Uri(address), options);

    public static GrpcChannel ForAddress(Uri address, GrpcChannelOptions? options = null)
    {
        if (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
            throw new ArgumentException($"gRPC address '{address}' must start with http:// or https://", nameof(address));
        return new GrpcChannel(address, options ?? new GrpcChannelOptions());
    }

    internal Uri UriFor(string path)
    {
        lock (_uris)
        {
            if (!_uris.TryGetValue(path, out var uri)) _uris[path] = uri = new Uri(Address, path);
            return uri;
        }
    }

    public Task<TResponse> UnaryAsync<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions? options = null)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse>
    {
        options ??= CallOptions.Default;
        if (_resilience is null) return UnaryOnceAsync(method, request, options);
        return UnaryResilientAsync(method, request, options);
    }

    private async Task<TResponse> UnaryResilientAsync<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse>
    {
        // Every attempt shares the call's deadline, so retries never extend it.
        var fixedDeadline = options with { Deadline = options.EffectiveDeadline(), Timeout = null };
        return await _resilience!.ExecuteAsync(method.Idempotent,
            static (s, token) => s.Item1.UnaryOnceAsync(s.method, s.request, s.fixedDeadline with { CancellationToken = token }),
            (this, method, request, fixedDeadline), options.CancellationToken).ConfigureAwait(false);
    }

    private async Task<TResponse> UnaryOnceAsync<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse>
    {
        using var call = new GrpcCall<TRequest, TResponse>(this, method, options);
        call.Start(request);
        return await call.ResponseAsync().ConfigureAwait(false);
    }

    public GrpcCall<TRequest, TResponse> ServerStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions? options = null)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse>
    {
        var call = new GrpcCall<TRequest, TResponse>(this, method, options ?? CallOptions.Default);
        call.Start(request);
        return call;
    }

    /// <summary>Client streaming: write requests, CompleteAsync, then await ResponseAsync.</summary>
    public GrpcCall<TRequest, TResponse> ClientStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, CallOptions? options = null)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse>
    {
        var call = new GrpcCall<TRequest, TResponse>(this, method, options ?? CallOptions.Default);
        call.Start(null);
        return call;
    }

    public GrpcCall<TRequest, TResponse> DuplexStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, CallOptions? options = null)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse>
    {
        var call = new GrpcCall<TRequest, TResponse>(this, method, options ?? CallOptions.Default);
        call.Start(null);
        return call;
    }

    public void Dispose() => Invoker.Dispose();
}
