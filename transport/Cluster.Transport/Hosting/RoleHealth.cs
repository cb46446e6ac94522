using Grpc.HealthCheck;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Transport;

/// <summary>
/// A role's answer to grpc.health.v1 (Kubernetes' grpc probes, grpc_health_probe): the server ("") and each of
/// the role's services are NOT_SERVING from the start until <see cref="MarkServing"/>, and again from
/// <see cref="MarkNotServing"/> (shutdown begins). Watchers see every change; <see cref="IsServing"/> is the same
/// state for the HTTP probes (<see cref="HealthEndpoints"/>), so the two can never disagree.
/// </summary>
public sealed class RoleHealth
{
    private readonly HealthServiceImpl _health;
    private readonly string[] _services;
    private volatile bool _serving;

    public RoleHealth(HealthServiceImpl health, params string[] services)
    {
        _health = health;
        _services = ["", .. services];
        MarkNotServing();
    }

    /// <summary>What grpc.health.v1 answers now: true for SERVING.</summary>
    public bool IsServing => _serving;

    public void MarkServing() => Set(ServingStatus.Serving);

    public void MarkNotServing() => Set(ServingStatus.NotServing);

    private void Set(ServingStatus status)
    {
        foreach (string service in _services) _health.SetStatus(service, status);
        _serving = status == ServingStatus.Serving;
    }
}
