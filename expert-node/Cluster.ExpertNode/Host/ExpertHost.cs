using System.Net;
using System.Text.Json;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Tensors;
using Cluster.ExpertNode.Placement;
using Cluster.Transport;
using Grpc.HealthCheck;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Cluster.ExpertNode.Host;

/// <summary>
/// An expert node: loads exactly its slots' experts from the checkpoint (other experts' bytes are never read) and
/// serves ExpertService, grpc.health.v1 (SERVING once the experts are loaded and the port is open) and server
/// reflection on one HTTP/2 port; with an HTTP port, /metrics and the same health as /healthz and /readyz.
/// </summary>
public sealed class ExpertHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Checkpoint _mapped;

    private ExpertHost(WebApplication app, string nodeId, int port, HostedExperts experts, RoleHealth health, Checkpoint mapped)
    {
        _app = app;
        _mapped = mapped;
        NodeId = nodeId;
        Port = port;
        Experts = experts;
        Health = health;
    }

    public string NodeId { get; }
    public int Port { get; }
    public HostedExperts Experts { get; }
    public RoleHealth Health { get; }
    /// <summary>Bytes of the expert tensors this node holds (its slots'; the rest of the mapping is never read).</summary>
    public long LoadedBytes => Experts.LoadedBytes;

    /// <summary>Runs an expert node until <paramref name="cancel"/>; prints the READY line once it serves.</summary>
    public static async Task<int> RunAsync(ExpertHostOptions options, CancellationToken cancel)
    {
        await using ExpertHost host = await StartAsync(options, cancel).ConfigureAwait(false);
        Console.Out.WriteLine(ReadyLine(host.NodeId, host.Port));
        Console.Out.Flush();
        try { await Task.Delay(Timeout.Infinite, cancel).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        host.Health.MarkNotServing();
        return 0;
    }

    public static string ReadyLine(string nodeId, int port) =>
        $"READY {{\"role\":\"expert\",\"node_id\":{JsonSerializer.Serialize(nodeId)},\"grpc_port\":{port}}}";

    public static async Task<ExpertHost> StartAsync(ExpertHostOptions options, CancellationToken cancel = default)
    {
        if (!IPAddress.TryParse(options.Host, out IPAddress? address)) throw new ArgumentException($"--host '{options.Host}' is not an IP address");
        if (options.Port is < 0 or > 65535) throw new ArgumentException($"--port {options.Port} out of range 0..65535");
        PlacementPlan plan = PlacementPlan.Load(options.PlanPath);
        if (!options.Join) plan.NodeIndex(options.NodeId);
        if (!Directory.Exists(options.ModelDir)) throw new DirectoryNotFoundException($"{options.ModelDir}: model directory not found");
        ModelConfig config = ModelConfig.Load(Path.Combine(options.ModelDir, Checkpoint.ConfigFile));
        // Every routed expert mapped once, nothing read; each plan's slots are a subset of it. The first plan's are
        // prefaulted from every core before the node serves; later ones page in on the loading thread while it serves.
        Checkpoint mapped = Checkpoint.Open(options.ModelDir, HostedExperts.IsRoutedExpertTensor);
        bool serving = false;
        HostedExperts experts;
        try
        {
            experts = HostedExperts.Load(config, plan, options.NodeId, names =>
            {
                var subset = new CheckpointSubset(mapped, names);
                Weight[] weights = [.. subset.Names.Select(mapped.Get)];
                if (!serving) Residency.Prefault(weights);
                // Every plan's new slots, so a rebalance keeps them all locked; a release unlocks what it drops.
                if (options.LockWeights) Residency.Lock(weights);
                return subset;
            }, options.Join);
        }
        catch
        {
            mapped.Dispose();
            throw;
        }
        serving = true;
        try
        {
            cancel.ThrowIfCancellationRequested();
            var builder = GrpcHostBuilder.Create(new GrpcServerOptions { MinimumLogLevel = options.Verbose ? LogLevel.Information : LogLevel.Warning, ClusterToken = options.ClusterToken });
            ListenOptions? bound = null;
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.ListenGrpc(address, options.Port, options.ClusterToken?.Tls, l => bound = l);
                if (options.HttpPort is int httpPort) k.Listen(address, httpPort, l => l.Protocols = HttpProtocols.Http1);
            });
            var metrics = new ExpertMetrics(options.NodeId);
            builder.Services.AddGrpc().AddServiceOptions<ExpertService>(o => o.MaxReceiveMessageSize = DispatchLimits.MaxFrameBytes);
            builder.Services.AddSingleton(sp => new ExpertService(options.NodeId, experts, config, options.PlanPath, options.Restarts, sp.GetRequiredService<ILogger<ExpertService>>(),
                sp.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping, metrics));
            WebApplication app = builder.Build();
            var health = new RoleHealth(app.Services.GetRequiredService<HealthServiceImpl>(), Protos.V1.ExpertService.Descriptor.FullName);
            app.MapGrpcInfrastructure();
            app.MapGrpcService<ExpertService>();
            if (options.HttpPort is not null)
            {
                CallMetrics calls = app.Services.GetRequiredService<CallMetrics>();
                // Scraped and probed over the HTTP/1.1 port (the gRPC port speaks HTTP/2 alone, or TLS).
                app.MapHealthEndpoints(health);
                app.MapGet("/metrics", (HttpContext http) =>
                {
                    using var text = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
                    metrics.Write(text, experts, calls);
                    http.Response.ContentType = PrometheusText.ContentType;
                    return http.Response.WriteAsync(text.ToString(), http.RequestAborted);
                });
            }
            await app.StartAsync(cancel).ConfigureAwait(false);
            // Kestrel writes the bound endpoint back into the listen options, so port 0 resolves here.
            int port = bound!.IPEndPoint!.Port;
            ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Cluster.ExpertNode");
            // A node that joins with no slots holds no plan of its own to prepare again.
            if (experts.Newest.Nodes.Any(n => n.Id == options.NodeId))
                await ControlPathWarmup.RunAsync(port, experts.Newest, options.ClusterToken, logger, cancel).ConfigureAwait(false);
            health.MarkServing();
            logger.LogInformation("expert node {Node} serving {Slots} slots ({Bytes:N0} bytes) on port {Port}, plan version {Version}",
                options.NodeId, experts.Slots().Count(), experts.LoadedBytes, port, plan.Version);
            return new ExpertHost(app, options.NodeId, port, experts, health, mapped);
        }
        catch
        {
            experts.Dispose();
            mapped.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Health.MarkNotServing();
        using (var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
            await _app.StopAsync(grace.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        Experts.Dispose();
        _mapped.Dispose();
    }
}
