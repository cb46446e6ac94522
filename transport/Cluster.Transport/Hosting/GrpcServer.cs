using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Cluster.Transport;

/// <summary>
/// A host that serves only gRPC on one listener: the roles' hosts add an HTTP port beside it, tests and benchmarks
/// use this. <paramref name="services"/> registers service instances, <paramref name="map"/> maps them; health
/// and reflection are always there.
/// </summary>
public sealed class GrpcServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private GrpcServer(WebApplication app, int port, bool tls)
    {
        _app = app;
        Port = port;
        Address = new Uri($"{(tls ? "https" : "http")}://127.0.0.1:{port}");
    }

    public int Port { get; }
    /// <summary>A loopback address of the server, for clients on the same machine.</summary>
    public Uri Address { get; }
    public IServiceProvider Services => _app.Services;

    public static async Task<GrpcServer> StartAsync(GrpcServerOptions options, Action<WebApplicationBuilder> services, Action<WebApplication> map)
    {
        var builder = GrpcHostBuilder.Create(options);
        ListenOptions? bound = null;
        // A certificate given is served as it is; else the cluster's TLS, read again when its files change, as a node's.
        ClusterTls? tls = options.Certificate is null ? options.ClusterToken?.Tls : null;
        builder.WebHost.ConfigureKestrel(k =>
        {
            if (tls is not null) k.ListenGrpc(options.Address, options.Port, tls, l => bound = l);
            else k.ListenGrpc(options.Address, options.Port, options.Certificate, l => bound = l);
        });
        services(builder);
        var app = builder.Build();
        app.MapGrpcInfrastructure();
        map(app);
        await app.StartAsync().ConfigureAwait(false);
        // Kestrel writes the bound endpoint back into the listen options, so port 0 resolves here.
        return new GrpcServer(app, bound!.IPEndPoint!.Port, options.Certificate is not null || tls is not null);
    }

    public async ValueTask DisposeAsync()
    {
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(grace.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
