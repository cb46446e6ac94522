using System.Net;
using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.HealthCheck;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.AttentionNode;

/// <summary>
/// A running attention node of one <see cref="NodeRole"/>: Kestrel serving AttentionService, grpc.health.v1
/// (NOT_SERVING until the model is loaded and every expert stream is up) and server reflection, the model, its
/// paged latent cache and its scheduler.
/// </summary>
public sealed class AttentionHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly RoleHealth _health;
    private NodeModel? _node;

    private readonly TimeSpan _drainTimeout;

    private AttentionHost(WebApplication app, RoleHealth health, AttentionService service, string nodeId, int port, int? httpPort, TimeSpan drainTimeout)
    {
        _drainTimeout = drainTimeout;
        HttpPort = httpPort;
        _app = app;
        _health = health;
        Service = service;
        NodeId = nodeId;
        Port = port;
    }

    public string NodeId { get; }
    public int Port { get; }
    /// <summary>The HTTP/1.1 port (GET /stats, /metrics, /healthz, /readyz); null when the node has none.</summary>
    public int? HttpPort { get; }
    public AttentionService Service { get; }
    /// <summary>The streams to the expert nodes; null when the experts run here.</summary>
    public ExpertStreams? Experts => Node.Experts;
    internal NodeModel Node => _node ?? throw new InvalidOperationException("the node is not loaded");
    public Scheduling.SchedulerCounters Counters => Node.Scheduler.Counters;
    public Engine.Cache.LatentCacheManager Caches => Node.Scheduler.Caches;
    public NodeRole Role => Node.Role;

    /// <summary>
    /// Starts serving (health NOT_SERVING), opens one Dispatch stream per expert node of the plan (waiting for
    /// nodes that are still loading; local experts without a plan), loads the model, then reports SERVING.
    /// </summary>
    public static async Task<AttentionHost> StartAsync(AttentionOptions options, IProgress<double>? progress = null, CancellationToken ct = default)
    {
        options.Validate();
        if (!IPAddress.TryParse(options.Host, out IPAddress? address)) throw new ArgumentException($"--host: '{options.Host}' is not an IP address");
        var builder = GrpcHostBuilder.Create(new GrpcServerOptions { MinimumLogLevel = options.LogLevel, ClusterToken = options.ClusterToken });
        ListenOptions? grpcListen = null, httpListen = null;
        var service = new AttentionService(options.NodeId, options.Restarts);
        builder.Services.AddSingleton(service);
        PlanAgentHosting.Add(builder, options);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ListenGrpc(address, options.Port, options.ClusterToken?.Tls, listen => grpcListen = listen);
            if (options.HttpPort is int httpPort)
                k.Listen(address, httpPort, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1;
                    httpListen = listen;
                });
        });
        var app = builder.Build();
        var health = new RoleHealth(app.Services.GetRequiredService<HealthServiceImpl>(), Protos.V1.AttentionService.Descriptor.FullName);
        app.MapGrpcInfrastructure();
        app.MapGrpcService<AttentionService>();
        PlanAgentHosting.Map(app);
        AttentionHost? started = null;
        NodeHttpEndpoints.Map(app, () => started?._node?.Stats(options.NodeId, options.Restarts), () => started?._node?.Experts?.Metrics, app.Services.GetRequiredService<CallMetrics>(), health);
        await app.StartAsync(ct).ConfigureAwait(false);
        // Kestrel writes the bound endpoint back into the listen options, so port 0 resolves here.
        var host = new AttentionHost(app, health, service, options.NodeId, grpcListen!.IPEndPoint!.Port, httpListen?.IPEndPoint!.Port, options.DrainTimeout);
        started = host;
        try
        {
            ILogger log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Cluster.AttentionNode");
            log.LogInformation("{Node}: loading {Dir} on port {Port}", options.NodeId, options.ModelDir, host.Port);
            ExpertStreams? remote = null;
            if (options.PlanPath is { } planPath)
            {
                var config = Engine.Config.ModelConfig.Load(Path.Combine(options.ModelDir, Engine.Checkpoints.Checkpoint.ConfigFile));
                remote = await ExpertStreams.ConnectAsync(PlacementPlan.Load(planPath), config, options.ExpertWait, logger: log, token: options.ClusterToken, cancel: ct).ConfigureAwait(false);
                log.LogInformation("{Node}: dispatch streams open to {Count} expert nodes", options.NodeId, remote.Nodes.Count);
            }
            TensorDType dispatch = options.Dispatch.WireType();
            try { host._node = await Task.Run(() => NodeModel.Load(options, remote, dispatch, log, progress), ct).ConfigureAwait(false); }
            catch
            {
                if (remote is not null) await remote.DisposeAsync().ConfigureAwait(false);
                throw;
            }
            service.Attach(host._node);
            PlanAgentHosting.Attach(app, host._node);
            health.MarkServing();
            log.LogInformation("{Node}: serving as {Role}", options.NodeId, options.Role.Name());
            return host;
        }
        catch
        {
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public AttentionStats Stats() => Node.Stats(NodeId, Service.Restarts);

    /// <summary>
    /// <c>cluster serve attention</c>: runs the node until <paramref name="ct"/> fires. Prints one line
    /// <c>READY {"role":"attention",...}</c> to stdout when it serves.
    /// </summary>
    public static async Task<int> RunAsync(AttentionOptions options, CancellationToken ct)
    {
        await using AttentionHost host = await StartAsync(options, null, ct).ConfigureAwait(false);
        Console.Out.WriteLine("READY " + System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["role"] = "attention",
            ["node_role"] = options.Role.Name(),
            ["node_id"] = host.NodeId,
            ["grpc_port"] = host.Port,
            ["http_port"] = host.HttpPort is int http ? http : 0,
        }));
        Console.Out.Flush();
        try { await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        return 0;
    }

    /// <summary>
    /// Graceful shutdown, as Kubernetes' termination expects: NOT_SERVING (probes and the gateway stop sending), new
    /// requests refused with UNAVAILABLE, the running ones given up to <see cref="AttentionOptions.DrainTimeout"/> to
    /// finish; then the scheduler closes what is left and the server stops.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _health.MarkNotServing();
        Service.StartDraining();
        if (_node is not null)
        {
            var until = DateTime.UtcNow + _drainTimeout;
            while (!Idle(_node) && DateTime.UtcNow < until) await Task.Delay(20).ConfigureAwait(false);
            await _node.DisposeAsync().ConfigureAwait(false);
        }
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(grace.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>No request is running, queued or holding cache blocks (a decode node's transfer in progress holds some).</summary>
    private static bool Idle(NodeModel node) =>
        node.Scheduler.Counters.Running == 0 && node.Scheduler.Counters.Queued == 0 && node.Scheduler.Caches.Stats().UsedBlocks == 0;
}
