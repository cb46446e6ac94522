namespace Cluster.ExpertNode.Placement;

/// <summary>
/// Where one MoE layer's logical experts live: the replicas of each expert, and the inverse (the expert in
/// each slot of each node).
/// </summary>
public sealed class LayerPlacement
{
    private readonly ExpertReplica[][] _replicas;
    private readonly int[][] _slots;

    /// <param name="replicas">Per logical expert, its physical slots; validated by <see cref="PlacementPlan"/>.</param>
    public LayerPlacement(int layer, int nodes, ExpertReplica[][] replicas)
    {
        Layer = layer;
        _replicas = replicas;
        var counts = new int[nodes];
        foreach (ExpertReplica[] list in replicas)
            foreach (ExpertReplica r in list) counts[r.Node] = Math.Max(counts[r.Node], r.Slot + 1);
        _slots = new int[nodes][];
        for (int n = 0; n < nodes; n++) _slots[n] = new int[counts[n]];
        for (int e = 0; e < replicas.Length; e++)
            foreach (ExpertReplica r in replicas[e]) _slots[r.Node][r.Slot] = e;
    }

    public int Layer { get; }
    public int Experts => _replicas.Length;

    public ReadOnlySpan<ExpertReplica> ReplicasOf(int expert) => _replicas[expert];

    /// <summary>The logical expert in each slot of <paramref name="node"/>, slot order.</summary>
    public ReadOnlySpan<int> SlotsOn(int node) => _slots[node];

    public int ReplicaCount
    {
        get
        {
            int count = 0;
            foreach (ExpertReplica[] list in _replicas) count += list.Length;
            return count;
        }
    }
}
