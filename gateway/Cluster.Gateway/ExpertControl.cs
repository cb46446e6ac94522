using Cluster.ExpertNode.Control;
using Cluster.Gateway.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Gateway;

/// <summary>
/// cluster.v1.Control on the gateway's gRPC port (what <c>cluster experts ... --gateway</c> talks to). The service
/// is the expert placement's (<see cref="ControlService"/>); the gateway gives it the attention nodes it knows, and runs
/// its <see cref="AutoRebalancer"/> when `--rebalance-interval` asks for one.
/// </summary>
internal static class ExpertControl
{
    /// <summary>Registers the service, and with <paramref name="schedule"/> the automatic rebalance that drives it on <paramref name="time"/>'s clock.</summary>
    public static void Add(IServiceCollection services, Admission admission, Cluster.Transport.ClusterToken? token, RebalanceSchedule? schedule, TimeProvider time)
    {
        services.AddSingleton(sp => new ControlService(
            () => [.. admission.Nodes.Where(n => !n.Retired).Select(n => n.Endpoint)], sp.GetRequiredService<ILogger<ControlService>>(), token));
        if (schedule is not null)
            services.AddHostedService(sp => new AutoRebalancer(sp.GetRequiredService<ControlService>(), schedule, time, sp.GetRequiredService<ILogger<AutoRebalancer>>()));
    }

    public static void Map(WebApplication app) => app.MapGrpcService<ControlService>();
}
