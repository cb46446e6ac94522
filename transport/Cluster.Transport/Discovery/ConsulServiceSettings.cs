namespace Cluster.Transport.Discovery;

/// <summary>What a role registers with Consul: who it is, where others dial it, and how its health is checked.</summary>
public sealed record ConsulServiceSettings
{
    /// <summary>The service id, unique on the agent: the role's node id.</summary>
    public required string Id { get; init; }
    /// <summary>The service name followers ask for ("cluster-attention").</summary>
    public required string Name { get; init; }
    /// <summary>"host:port" others dial and the agent's check calls: the role's gRPC port.</summary>
    public required string Advertise { get; init; }
    /// <summary>Service metadata: the role and, for expert nodes, the plan's node id.</summary>
    public IReadOnlyDictionary<string, string> Meta { get; init; } = new Dictionary<string, string>();
    public TimeSpan CheckInterval { get; init; } = TimeSpan.FromSeconds(2);
    public TimeSpan CheckTimeout { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan DeregisterCriticalAfter { get; init; } = TimeSpan.FromMinutes(1);
}
