using Cluster.Protos.V1;

namespace Cluster.Gateway.Nodes.Policies;

/// <summary>
/// The choice every role's policy makes, written once: among the usable nodes not tried yet that can take the
/// request, the one of lowest cost, nodes that recently refused a connection last, ties taken in turn so idle nodes
/// share the work. A role's policy says only which nodes can take a request and what each would cost.
/// </summary>
public abstract class RankingPolicy : IPlacementPolicy
{
    public abstract NodeRole Role { get; }

    /// <summary>Whether the node could take the request now (it is usable and not tried).</summary>
    protected abstract bool CanTake(AttentionNode node, AdmissionRequest request);

    /// <summary>What placing the request there costs, compared first by the first number; lower is better.</summary>
    protected abstract (long First, long Second) Cost(AttentionNode node, AdmissionRequest request);

    public AttentionNode? Pick(ReadOnlySpan<AttentionNode> pool, AdmissionRequest request, IReadOnlySet<AttentionNode>? tried, int turn)
    {
        AttentionNode? best = null;
        (bool, long, long, int) bestKey = default;
        int start = pool.Length > 0 ? (int)((uint)turn % (uint)pool.Length) : 0;
        for (int i = 0; i < pool.Length; i++)
        {
            AttentionNode n = pool[i];
            if (!n.State.Usable || tried?.Contains(n) == true || !CanTake(n, request)) continue;
            var (first, second) = Cost(n, request);
            // The node at the turn's position wins a tie, then the ones after it.
            int rotation = i >= start ? i - start : i - start + pool.Length;
            var key = (n.RecentlyDown, first, second, rotation);
            if (best is null || key.CompareTo(bestKey) < 0) (best, bestKey) = (n, key);
        }
        return best;
    }
}
