using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Transport.Legacy;

/// <summary>A standalone Kestrel host for gRPC services (nodes that also serve HTTP map services on their own app instead).</summary>
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

    public static async Task<GrpcServer> StartAsync(GrpcServerOptions options, params IGrpcService[] services)
    {
        var builder = GrpcHostBuilder.Create(options.MinimumLogLevel);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ConfigureGrpcLimits();
            k.Listen(options.Address, options.Port, listen => listen.UseGrpcProtocols(options.Certificate));
        });
        var app = builder.Build();
        foreach (var service in services) app.MapGrpcService(service, options);
        app.MapGrpcUnimplemented();
        await app.StartAsync().ConfigureAwait(false);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        int port = new Uri(addresses.First()).Port;
        return new GrpcServer(app, port, options.Certificate is not null);
    }

    public async ValueTask DisposeAsync()
    {
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(grace.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
