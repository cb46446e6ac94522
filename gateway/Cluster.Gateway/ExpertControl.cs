using Cluster.ExpertNode.Control;
using Cluster.Gateway.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Gateway;

/// <summary>
/// cluster.v1.Control on the gateway's gRPC port (what <c>cluster experts ... --gateway</c> talks to). The service
/// is the expert placement's (<see cref="ControlService"/>); the gateway gives it the attention nodes it knows.
/// </summary>
internal static class ExpertControl
{
    public static void Add(IServiceCollection services, Admission admission, Cluster.Transport.ClusterToken? token) =>
        services.AddSingleton(sp => new ControlService(
            () => [.. admission.Nodes.Where(n => !n.Retired).Select(n => n.Endpoint)], sp.GetRequiredService<ILogger<ControlService>>(), token));

    public static void Map(WebApplication app) => app.MapGrpcService<ControlService>();
}
