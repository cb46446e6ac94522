using Cluster.Protos.V1;

namespace Cluster.Gateway.Nodes.Policies;

/// <summary>
/// How one role's node is chosen for a request (YARP's load-balancing policies, for attention nodes): one policy per
/// role, registered as a service, asked by <see cref="Admission"/> under its lock with the ledger as it stands.
/// </summary>
public interface IPlacementPolicy
{
    /// <summary>The pool it chooses from.</summary>
    NodeRole Role { get; }

    /// <summary>
    /// The node of <paramref name="pool"/> to place <paramref name="request"/> on now, or null when none can take
    /// it. Nodes in <paramref name="tried"/> refused it already; <paramref name="turn"/> rotates ties.
    /// </summary>
    AttentionNode? Pick(ReadOnlySpan<AttentionNode> pool, AdmissionRequest request, IReadOnlySet<AttentionNode>? tried, int turn);
}
