using Cluster.Gateway.Grpc;
using Cluster.Gateway.Metrics;
using Cluster.Gateway.Nodes;
using Cluster.Gateway.OpenAi;
using Cluster.Gateway.Security;
using Cluster.Transport;
using Grpc.HealthCheck;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Cluster.Gateway;

/// <summary>
/// The gateway role: the OpenAI-compatible HTTP API and probes on one port, cluster.v1.Inference, grpc.health.v1
/// (SERVING once both ports listen) and server reflection on another (cleartext HTTP/2), both in front of the
/// attention nodes: nodes of role both, and prefill/decode pairs. Both APIs check API keys (<see cref="ApiKeyMiddleware"/>,
/// <see cref="ApiKeyInterceptor"/>); the probes, /metrics, health and reflection stay open.
/// </summary>
public sealed class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _http, _grpc;
    private readonly RoleHealth _health;
    private readonly TimeSpan _drainTimeout;

    private GatewayHost(WebApplication http, WebApplication grpc, RoleHealth health, TimeSpan drainTimeout)
    {
        _http = http;
        _grpc = grpc;
        _health = health;
        _drainTimeout = drainTimeout;
        Model = http.Services.GetRequiredService<ServedModel>();
        Router = http.Services.GetRequiredService<NodeRouter>();
        HttpPort = BoundPort(http);
        GrpcPort = BoundPort(grpc);
    }

    public int HttpPort { get; }
    public int GrpcPort { get; }
    public ServedModel Model { get; }
    public NodeRouter Router { get; }

    /// <summary>Runs the gateway until <paramref name="ct"/> fires; prints the READY line once both ports listen.</summary>
    public static async Task<int> RunAsync(GatewayOptions options, CancellationToken ct)
    {
        await using GatewayHost host = await StartAsync(options, ct).ConfigureAwait(false);
        Console.Out.WriteLine($"READY {{\"role\":\"gateway\",\"node_id\":\"{options.NodeId}\",\"grpc_port\":{host.GrpcPort},\"http_port\":{host.HttpPort}}}");
        Console.Out.Flush();
        // The hosts stop themselves on SIGTERM and Ctrl-C (their console lifetime), which must end this wait too.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, host._http.Lifetime.ApplicationStopping, host._grpc.Lifetime.ApplicationStopping);
        try { await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        return 0;
    }

    public static Task<GatewayHost> StartAsync(GatewayOptions options, CancellationToken ct = default) => StartAsync(options, null, ct);

    /// <param name="configureServices">Replaces some of the gateway's services (<see cref="GatewayServices"/>) before it starts.</param>
    public static async Task<GatewayHost> StartAsync(GatewayOptions options, Action<IServiceCollection>? configureServices, CancellationToken ct = default)
    {
        options.Validate();
        WebApplicationBuilder httpBuilder = RoleHostBuilder.Create(options.MinimumLogLevel);
        httpBuilder.Services.AddGateway(options);
        configureServices?.Invoke(httpBuilder.Services);
        WebApplication? http = null, grpc = null;
        try
        {
            http = Build(httpBuilder, k =>
            {
                k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
                k.Listen(options.Host, options.HttpPort, listen =>
                {
                    if (options.Certificate is null) listen.Protocols = HttpProtocols.Http1;
                    else
                    {
                        listen.Protocols = HttpProtocols.Http1AndHttp2;
                        listen.UseHttps(options.Certificate);
                    }
                });
            });
            IServiceProvider services = http.Services;
            // Settings first (their validation fails here in one line), then the model, before anything listens.
            services.GetRequiredService<Admission>();
            services.GetRequiredService<StatsPoller>();
            services.GetRequiredService<ServedModel>();
            services.GetRequiredService<KeyAccounts>();
            OpenAiRoutes.Map(http);

            // The gRPC port serves the same singletons as the HTTP port; the API key check guards Inference alone, the
            // cluster token everything else but health and reflection.
            var grpcBuilder = GrpcHostBuilder.Create(new GrpcServerOptions
            {
                MinimumLogLevel = options.MinimumLogLevel,
                ClusterToken = options.ClusterToken,
                OpenServices = [Protos.V1.Inference.Descriptor.FullName],
            });
            grpcBuilder.Services.AddSingleton(services.GetRequiredService<InferenceService>());
            grpcBuilder.Services.AddSingleton(services.GetRequiredService<KeyAccounts>());
            grpcBuilder.Services.AddSingleton(services.GetRequiredService<GatewayMetrics>());
            grpcBuilder.Services.AddGrpc().AddServiceOptions<InferenceService>(o => o.Interceptors.Add<ApiKeyInterceptor>());
            ExpertControl.Add(grpcBuilder.Services, services.GetRequiredService<Admission>(), options.ClusterToken, options.Rebalance, services.GetRequiredService<TimeProvider>());
            grpc = Build(grpcBuilder, k => k.ListenGrpc(options.Host, options.GrpcPort, (ClusterTls?)null));
            grpc.MapGrpcInfrastructure();
            grpc.MapGrpcService<InferenceService>();
            ExpertControl.Map(grpc);
            MetricsEndpoint.Map(http, services.GetRequiredService<GatewayMetrics>(), grpc.Services.GetRequiredService<CallMetrics>());
            var health = new RoleHealth(grpc.Services.GetRequiredService<HealthServiceImpl>(), Protos.V1.Inference.Descriptor.FullName);

            // The first reports (a static list at once) are in place before the statistics' first round asks them.
            await services.GetRequiredService<NodeMembership>().StartAsync(ct).ConfigureAwait(false);
            services.GetRequiredService<StatsPoller>().Start();
            await http.StartAsync(ct).ConfigureAwait(false);
            await grpc.StartAsync(ct).ConfigureAwait(false);
            health.MarkServing();
            return new GatewayHost(http, grpc, health, options.DrainTimeout);
        }
        catch
        {
            // The HTTP port's container owns the gateway's singletons (membership, statistics, admission).
            if (grpc is not null) await grpc.DisposeAsync().ConfigureAwait(false);
            if (http is not null) await http.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static WebApplication Build(WebApplicationBuilder builder, Action<KestrelServerOptions> kestrel)
    {
        builder.Services.Configure<SimpleConsoleFormatterOptions>(o => o.TimestampFormat = "HH:mm:ss.fff ");
        // --verbose is about requests and nodes, not every hosting event.
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            kestrel(k);
        });
        return builder.Build();
    }

    private static int BoundPort(WebApplication app)
    {
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        return new Uri(addresses.First().Replace("[::]", "localhost", StringComparison.Ordinal)).Port;
    }

    /// <summary>
    /// Graceful shutdown: NOT_SERVING, then both servers stop taking connections and drain what is in flight
    /// (<see cref="GatewayOptions.DrainTimeout"/>); disposing the HTTP port's container then stops the membership and
    /// the statistics and closes every node's channel.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _health.MarkNotServing();
        using var grace = new CancellationTokenSource(_drainTimeout);
        await Task.WhenAll(_http.StopAsync(grace.Token), _grpc.StopAsync(grace.Token)).ConfigureAwait(false);
        await _grpc.DisposeAsync().ConfigureAwait(false);
        await _http.DisposeAsync().ConfigureAwait(false);
    }
}
