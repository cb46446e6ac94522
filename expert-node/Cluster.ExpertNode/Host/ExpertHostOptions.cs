namespace Cluster.ExpertNode.Host;

/// <summary>What <c>cluster serve expert</c> takes.</summary>
public sealed record ExpertHostOptions
{
    public required string ModelDir { get; init; }
    public required string PlanPath { get; init; }
    public required string NodeId { get; init; }
    /// <summary>Bind address.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 binds any free port.</summary>
    public int Port { get; init; }
    /// <summary>The HTTP/1.1 port of GET /metrics (Prometheus text); null: none.</summary>
    public int? HttpPort { get; init; }
    /// <summary>Start with no slots when the plan leaves this node out, to be given some by a newer plan (<c>cluster experts add</c>).</summary>
    public bool Join { get; init; }
    /// <summary>Locks the hosted experts' weights into memory as each plan's slots load (mlock).</summary>
    public bool LockWeights { get; init; }
    /// <summary>How often a supervisor has restarted this node (reported by GetInfo).</summary>
    public int Restarts { get; init; }
    /// <summary>The cluster's credential: required of every caller of the node's services (health and reflection stay open) and put on its own calls to other roles; null accepts any caller.</summary>
    public Cluster.Transport.ClusterToken? ClusterToken { get; init; }
    /// <summary>Information-level logs on stderr (warnings and errors otherwise).</summary>
    public bool Verbose { get; init; }
}
