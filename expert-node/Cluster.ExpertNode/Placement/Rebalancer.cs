namespace Cluster.ExpertNode.Placement;

/// <summary>
/// The next plan of a running cluster from the tokens its experts served (DeepSeek's EPLB, layer by layer): the
/// redundant replicas go to the experts with the most load per replica, the replicas are packed largest first onto
/// the least-loaded node (<see cref="PlacementPlanner"/>), and then each packed bin is given to the node that
/// already holds most of its experts, so a rebalance loads as few experts as it can. Nodes are interchangeable
/// within a layer (same slots, same links), so relabelling the bins changes no node's load.
/// </summary>
public static class Rebalancer
{
    /// <param name="replicas">Distinct nodes per expert at least; null keeps the current plan's.</param>
    /// <param name="redundantExperts">Extra replicas per layer; null keeps the current plan's.</param>
    /// <param name="nodes">The nodes of the next plan (added ones last, drained ones left out); null keeps the current ones.</param>
    public static PlacementPlan Rebalance(PlacementPlan current, ExpertLoad? load,
        int? replicas = null, int? redundantExperts = null, IReadOnlyList<ExpertNodeAddress>? nodes = null)
    {
        nodes ??= current.Nodes;
        int experts = current.RoutedExperts, n = nodes.Count;
        if (nodes.Select(x => x.Id).Distinct(StringComparer.Ordinal).Count() != n) throw new ArgumentException("expert node ids must be unique");
        int k = replicas ?? MinimumReplicas(current);
        int redundant = redundantExperts ?? current.Layers[0].ReplicaCount - experts * MinimumReplicas(current);
        int slots = PlacementPlanner.SlotsPerNode(experts, n, null, redundant, k);

        // Where each current node sits in the next plan's node list (-1: drained).
        var nextIndex = new int[current.Nodes.Count];
        for (int i = 0; i < nextIndex.Length; i++)
        {
            nextIndex[i] = -1;
            for (int j = 0; j < n; j++) if (nodes[j].Id == current.Nodes[i].Id) nextIndex[i] = j;
        }

        var layers = new List<LayerPlacement>();
        foreach (LayerPlacement before in current.Layers)
        {
            double[] weights = PlacementPlanner.LayerWeights(load, before.Layer, experts);
            int[] copies = PlacementPlanner.Replicate(weights, k, redundant, n, rotation: (int)((long)before.Layer * redundant % experts));
            LayerPlacement packed = PlacementPlanner.Pack(before.Layer, weights, copies, n, slots, rotation: layers.Count % n);
            layers.Add(Relabel(packed, Holdings(before, nextIndex, n), n));
        }
        return new PlacementPlan(current.Version + 1, experts, nodes, layers);
    }

    /// <summary>The fewest replicas any expert of the plan has: the plan's --expert-replicas.</summary>
    public static int MinimumReplicas(PlacementPlan plan)
    {
        int min = int.MaxValue;
        foreach (LayerPlacement layer in plan.Layers)
            for (int e = 0; e < layer.Experts; e++) min = Math.Min(min, layer.ReplicasOf(e).Length);
        return min;
    }

    /// <summary>The experts each next-plan node holds under the current plan (none for an added node).</summary>
    private static HashSet<int>[] Holdings(LayerPlacement before, int[] nextIndex, int n)
    {
        var held = new HashSet<int>[n];
        for (int j = 0; j < n; j++) held[j] = [];
        for (int i = 0; i < nextIndex.Length; i++)
            if (nextIndex[i] >= 0)
                foreach (int e in before.SlotsOn(i)) held[nextIndex[i]].Add(e);
        return held;
    }

    /// <summary>
    /// Gives every bin of <paramref name="packed"/> to a node, the pairs that keep the most experts in place first
    /// (greedy matching on the overlap; n is a handful of nodes).
    /// </summary>
    private static LayerPlacement Relabel(LayerPlacement packed, HashSet<int>[] held, int n)
    {
        var overlap = new int[n, n];
        for (int bin = 0; bin < n; bin++)
            foreach (int e in packed.SlotsOn(bin))
                for (int node = 0; node < n; node++)
                    if (held[node].Contains(e)) overlap[bin, node]++;
        var nodeOf = new int[n];
        var binTaken = new bool[n];
        var nodeTaken = new bool[n];
        for (int round = 0; round < n; round++)
        {
            int bestBin = -1, bestNode = -1;
            for (int bin = 0; bin < n; bin++)
            {
                if (binTaken[bin]) continue;
                for (int node = 0; node < n; node++)
                {
                    if (nodeTaken[node]) continue;
                    if (bestBin < 0 || overlap[bin, node] > overlap[bestBin, bestNode]) (bestBin, bestNode) = (bin, node);
                }
            }
            binTaken[bestBin] = nodeTaken[bestNode] = true;
            nodeOf[bestBin] = bestNode;
        }

        var replicas = new List<ExpertReplica>[packed.Experts];
        for (int e = 0; e < replicas.Length; e++) replicas[e] = [];
        for (int bin = 0; bin < n; bin++)
        {
            ReadOnlySpan<int> slots = packed.SlotsOn(bin);
            for (int s = 0; s < slots.Length; s++) replicas[slots[s]].Add(new ExpertReplica(nodeOf[bin], s));
        }
        return new LayerPlacement(packed.Layer, n, replicas.Select(r => r.ToArray()).ToArray());
    }
}
