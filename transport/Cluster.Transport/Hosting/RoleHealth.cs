using Grpc.HealthCheck;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Transport;

/// <summary>
/// A role's answer to grpc.health.v1 (Kubernetes' grpc probes, grpc_health_probe): the server ("") and each of
/// the role's services are NOT_SERVING from the start until <see cref="MarkServing"/>, and again from
/// <see cref="MarkNotServing"/> (shutdown begins). Watchers see every change.
/// </summary>
public sealed class RoleHealth
{
    private readonly HealthServiceImpl _health;
    private readonly string[] _services;

    public RoleHealth(HealthServiceImpl health, params string[] services)
    {
        _health = health;
        _services = ["", .. services];
        MarkNotServing();
    }

    public void MarkServing() => Set(ServingStatus.Serving);

    public void MarkNotServing() => Set(ServingStatus.NotServing);

    private void Set(ServingStatus status)
    {
        foreach (string service in _services) _health.SetStatus(service, status);
    }
}
