using System.Net;
using System.Text.Json;
using Cluster.Engine.Checkpoints;
using Cluster.ExpertNode.Placement;
using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Health;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.ExpertNode.Host;

/// <summary>
/// An expert node: loads exactly its slots' experts from the checkpoint (other experts' bytes are never read) and
/// serves ExpertService and grpc.health.v1 on one HTTP/2 port.
/// </summary>
public sealed class ExpertHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Checkpoint _checkpoint;

    private ExpertHost(WebApplication app, Checkpoint checkpoint, string nodeId, int port, HostedExperts experts, HealthService health)
    {
        _app = app;
        _checkpoint = checkpoint;
        NodeId = nodeId;
        Port = port;
        Experts = experts;
        Health = health;
    }

    public string NodeId { get; }
    public int Port { get; }
    public HostedExperts Experts { get; }
    public HealthService Health { get; }
    /// <summary>Bytes of the checkpoint tensors this node mapped: its experts only.</summary>
    public long LoadedBytes => _checkpoint.LoadedBytes;

    /// <summary>Runs an expert node until <paramref name="cancel"/>; prints the READY line once it serves.</summary>
    public static async Task<int> RunAsync(ExpertHostOptions options, CancellationToken cancel)
    {
        await using ExpertHost host = await StartAsync(options, cancel).ConfigureAwait(false);
        Console.Out.WriteLine(ReadyLine(host.NodeId, host.Port));
        Console.Out.Flush();
        try { await Task.Delay(Timeout.Infinite, cancel).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        host.Health.SetAllNotServing();
        return 0;
    }

    public static string ReadyLine(string nodeId, int port) =>
        $"READY {{\"role\":\"expert\",\"node_id\":{JsonSerializer.Serialize(nodeId)},\"grpc_port\":{port}}}";

    public static async Task<ExpertHost> StartAsync(ExpertHostOptions options, CancellationToken cancel = default)
    {
        if (!IPAddress.TryParse(options.Host, out IPAddress? address)) throw new ArgumentException($"--host '{options.Host}' is not an IP address");
        if (options.Port is < 0 or > 65535) throw new ArgumentException($"--port {options.Port} out of range 0..65535");
        PlacementPlan plan = PlacementPlan.Load(options.PlanPath);
        int node = plan.NodeIndex(options.NodeId);
        HashSet<string> names = HostedExperts.TensorNames(plan, node);
        Checkpoint checkpoint = Checkpoint.Open(options.ModelDir, names.Contains);
        try
        {
            HostedExperts experts = HostedExperts.Load(checkpoint, checkpoint.Config, plan, node);
            cancel.ThrowIfCancellationRequested();

            var builder = Cluster.Transport.Legacy.GrpcHostBuilder.Create(options.Verbose ? LogLevel.Information : LogLevel.Warning);
            builder.WebHost.ConfigureKestrel(k =>
            {
                Cluster.Transport.Legacy.GrpcEndpointExtensions.ConfigureGrpcLimits(k);
                k.Listen(address, options.Port, listen => listen.UseGrpcProtocols(null));
            });
            WebApplication app = builder.Build();
            ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Cluster.ExpertNode");
            var health = new HealthService();
            var serverOptions = new Cluster.Transport.Legacy.GrpcServerOptions { MaxReceiveMessageSize = ExpertMethods.MaxFrameBytes };
            app.MapGrpcService(new ExpertService(options.NodeId, experts, checkpoint.Config.HiddenSize, logger), serverOptions);
            app.MapGrpcService(health, serverOptions);
            app.MapGrpcUnimplemented();
            await app.StartAsync(cancel).ConfigureAwait(false);
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
            int port = new Uri(addresses.First()).Port;
            logger.LogInformation("expert node {Node} serving {Slots} slots ({Bytes:N0} bytes) on port {Port}, plan version {Version}",
                options.NodeId, names.Count / 3, checkpoint.LoadedBytes, port, plan.Version);
            return new ExpertHost(app, checkpoint, options.NodeId, port, experts, health);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Health.SetAllNotServing();
        using (var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
            await _app.StopAsync(grace.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _checkpoint.Dispose();
    }
}
