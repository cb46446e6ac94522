using Cluster.Gateway.Generation;
using Cluster.Gateway.Grpc;
using Cluster.Gateway.Nodes;
using Cluster.Gateway.OpenAi;
using Cluster.Transport;
using Cluster.Transport.Discovery;
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
/// attention nodes: nodes of role both, and prefill/decode pairs.
/// </summary>
public sealed class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _http, _grpc;
    private readonly Admission _admission;
    private readonly NodeMembership _membership;
    private readonly StatsPoller _stats;
    private readonly RoleHealth _health;

    private readonly TimeSpan _drainTimeout;

    private GatewayHost(WebApplication http, WebApplication grpc, RoleHealth health, Admission admission, NodeMembership membership, StatsPoller stats, ServedModel model, NodeRouter router,
        TimeSpan drainTimeout)
    {
        _health = health;
        _drainTimeout = drainTimeout;
        _http = http;
        _grpc = grpc;
        _admission = admission;
        _membership = membership;
        _stats = stats;
        Model = model;
        Router = router;
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

    public static async Task<GatewayHost> StartAsync(GatewayOptions options, CancellationToken ct = default)
    {
        options.Validate();
        ServedModel model = ServedModel.Load(options.ModelDir, options.ModelId, options.MaxModelLen, options.DefaultMaxTokens);
        GatewayDiscovery discovery = options.Discovery ?? new GatewayDiscovery
        {
            Attention = options.AttentionNodes.Count > 0 ? new StaticDiscovery(options.AttentionNodes) : null,
            Prefill = options.PrefillNodes.Count > 0 ? new StaticDiscovery(options.PrefillNodes) : null,
            Decode = options.DecodeNodes.Count > 0 ? new StaticDiscovery(options.DecodeNodes) : null,
        };
        var admission = new Admission(options.MaxQueue, options.MaxQueuedRequests);
        StatsPoller? stats = null;
        NodeMembership? membership = null;
        WebApplication? http = null, grpc = null;
        try
        {
            http = Build(RoleHostBuilder.Create(options.MinimumLogLevel), k =>
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
            var logger = http.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Cluster.Gateway");
            stats = new StatsPoller(admission, options.StatsInterval, options.HealthTimeout, logger);
            var router = new NodeRouter(admission, stats, logger);
            var generator = new Generator(router, logger);
            OpenAiRoutes.Map(http, model, new CompletionEndpoint(model, generator, logger), new Readiness(admission, options.HealthTimeout), router, stats);

            var grpcBuilder = GrpcHostBuilder.Create(new GrpcServerOptions { MinimumLogLevel = options.MinimumLogLevel });
            grpcBuilder.Services.AddSingleton(new InferenceService(model, generator));
            ExpertControl.Add(grpcBuilder.Services, admission);
            grpc = Build(grpcBuilder, k => k.ListenGrpc(options.Host, options.GrpcPort, null));
            grpc.MapGrpcInfrastructure();
            grpc.MapGrpcService<InferenceService>();
            ExpertControl.Map(grpc);
            var health = new RoleHealth(grpc.Services.GetRequiredService<HealthServiceImpl>(), Protos.V1.Inference.Descriptor.FullName);

            membership = new NodeMembership(discovery, admission, stats, logger);
            // The first reports (a static list at once) are in place before the statistics' first round asks them.
            await membership.StartAsync(ct).ConfigureAwait(false);
            stats.Start();
            await http.StartAsync(ct).ConfigureAwait(false);
            await grpc.StartAsync(ct).ConfigureAwait(false);
            health.MarkServing();
            return new GatewayHost(http, grpc, health, admission, membership, stats, model, router, options.DrainTimeout);
        }
        catch
        {
            if (membership is not null) await membership.DisposeAsync().ConfigureAwait(false);
            if (stats is not null) await stats.DisposeAsync().ConfigureAwait(false);
            if (http is not null) await http.DisposeAsync().ConfigureAwait(false);
            if (grpc is not null) await grpc.DisposeAsync().ConfigureAwait(false);
            admission.Dispose();
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

    /// <summary>Graceful shutdown: NOT_SERVING, then both servers stop taking connections and drain what is in flight (<see cref="GatewayOptions.DrainTimeout"/>).</summary>
    public async ValueTask DisposeAsync()
    {
        _health.MarkNotServing();
        using var grace = new CancellationTokenSource(_drainTimeout);
        await Task.WhenAll(_http.StopAsync(grace.Token), _grpc.StopAsync(grace.Token)).ConfigureAwait(false);
        await _http.DisposeAsync().ConfigureAwait(false);
        await _grpc.DisposeAsync().ConfigureAwait(false);
        await _membership.DisposeAsync().ConfigureAwait(false);
        await _stats.DisposeAsync().ConfigureAwait(false);
        _admission.Dispose();
    }
}
