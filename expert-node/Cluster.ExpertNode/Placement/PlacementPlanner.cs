using Cluster.Engine.Config;

namespace Cluster.ExpertNode.Placement;

/// <summary>
/// Computes a placement plan the way DeepSeek's EPLB does for one layer at a time: the extra replicas go one by one
/// to the expert with the most load per replica, then the replicas (each carrying its share of its expert's load)
/// are packed largest first onto the least-loaded node that has a free slot and no copy of that expert yet.
/// </summary>
public static class PlacementPlanner
{
    /// <param name="slotsPerNode">Slots per node per layer; null = just enough for every expert and replica.</param>
    /// <param name="redundantExperts">Extra replicas per MoE layer, on top of one slot per logical expert.</param>
    /// <param name="load">Measured tokens per expert; null treats every expert as equally loaded.</param>
    /// <param name="replicas">Distinct nodes every logical expert is on at least (--expert-replicas), so that losing
    /// <paramref name="replicas"/> - 1 nodes loses no expert.</param>
    public static PlacementPlan Plan(ModelConfig config, IReadOnlyList<ExpertNodeAddress> nodes, int? slotsPerNode = null,
        int redundantExperts = 0, ExpertLoad? load = null, ulong version = 1, int replicas = 1)
    {
        int experts = config.NRoutedExperts, n = nodes.Count;
        if (nodes.Select(x => x.Id).Distinct(StringComparer.Ordinal).Count() != n) throw new ArgumentException("expert node ids must be unique");
        int slots = SlotsPerNode(experts, n, slotsPerNode, redundantExperts, replicas);

        var layers = new List<LayerPlacement>();
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            if (!config.IsMoeLayer(layer)) continue;
            double[] weights = LayerWeights(load, layer, experts);
            int[] copies = Replicate(weights, replicas, redundantExperts, n, rotation: (int)((long)layer * redundantExperts % experts));
            layers.Add(Pack(layer, weights, copies, n, slots, rotation: layers.Count % n));
        }
        return new PlacementPlan(version, experts, nodes, layers);
    }

    /// <summary>Checks the counts (throwing with the option's name) and gives the slots per node per layer.</summary>
    internal static int SlotsPerNode(int experts, int n, int? slotsPerNode, int redundantExperts, int replicas)
    {
        if (experts <= 0) throw new ArgumentException("the model has no routed experts to place");
        if (n == 0) throw new ArgumentException("at least one expert node is needed");
        if (redundantExperts < 0) throw new ArgumentException($"--redundant-experts must not be negative (got {redundantExperts})");
        if (replicas < 1 || replicas > n)
            throw new ArgumentException($"--expert-replicas {replicas} needs 1..{n}: replicas of one expert never share a node, and there are {n} expert nodes");
        if (redundantExperts > experts * (n - replicas))
            throw new ArgumentException($"--redundant-experts {redundantExperts} is more than {n} nodes can hold: no two replicas of one expert share a node, so at most {experts * (n - replicas)} extra with {replicas} replicas each");
        int total = experts * replicas + redundantExperts;
        int slots = slotsPerNode ?? (total + n - 1) / n;
        if (slots < 1) throw new ArgumentException($"slots per node must be at least 1 (got {slots})");
        if ((long)slots * n < total)
            throw new ArgumentException($"{n} nodes x {slots} slots hold {slots * n} experts but each layer needs {total} ({experts} experts x {replicas} + {redundantExperts} redundant)");
        return Math.Min(slots, experts);
    }

    /// <summary>Expert nodes named expert-0.. on consecutive loopback ports, for plans made before the nodes exist.</summary>
    public static IReadOnlyList<ExpertNodeAddress> LoopbackNodes(int count, int firstPort) =>
        Enumerable.Range(0, count).Select(i => new ExpertNodeAddress($"expert-{i}", $"127.0.0.1:{firstPort + i}")).ToArray();

    internal static double[] LayerWeights(ExpertLoad? load, int layer, int experts)
    {
        var w = new double[experts];
        if (load is not null) load.Tokens(layer).CopyTo(w);
        // A layer with no measured tokens says nothing about its experts: treat them as equal.
        if (w.Sum() <= 0) Array.Fill(w, 1.0);
        return w;
    }

    /// <summary>Replica counts: <paramref name="replicas"/> each, then each extra replica to the expert with the highest load per replica.</summary>
    internal static int[] Replicate(double[] weights, int replicas, int redundant, int nodes, int rotation)
    {
        int experts = weights.Length;
        var copies = new int[experts];
        Array.Fill(copies, replicas);
        for (int r = 0; r < redundant; r++)
        {
            int best = -1;
            // Ties (always, without a load file) rotate with the layer so different layers replicate different experts.
            for (int j = 0; j < experts; j++)
            {
                int e = (j + rotation) % experts;
                if (copies[e] >= nodes) continue;
                if (best < 0 || weights[e] / copies[e] > weights[best] / copies[best]) best = e;
            }
            copies[best]++;
        }
        return copies;
    }

    /// <param name="rotation">Ties between equally loaded nodes go to the first from this node on, so the node that
    /// takes a layer's odd share changes from layer to layer and totals even out.</param>
    internal static LayerPlacement Pack(int layer, double[] weights, int[] copies, int nodes, int slots, int rotation)
    {
        var items = new List<(int Expert, double Load)>();
        for (int e = 0; e < weights.Length; e++)
            for (int c = 0; c < copies[e]; c++) items.Add((e, weights[e] / copies[e]));
        items.Sort((a, b) => a.Load != b.Load ? b.Load.CompareTo(a.Load) : a.Expert.CompareTo(b.Expert));

        var nodeLoad = new double[nodes];
        var held = new List<int>[nodes];
        for (int i = 0; i < nodes; i++) held[i] = [];
        foreach ((int expert, double share) in items)
        {
            int best = -1;
            for (int j = 0; j < nodes; j++)
            {
                int i = (j + rotation) % nodes;
                if (held[i].Count >= slots || held[i].Contains(expert)) continue;
                if (best < 0 || nodeLoad[i] < nodeLoad[best] || (nodeLoad[i] == nodeLoad[best] && held[i].Count < held[best].Count)) best = i;
            }
            if (best < 0)
                throw new ArgumentException($"layer {layer}: no node has a free slot without a copy of expert {expert}; add slots per node or fewer redundant experts");
            held[best].Add(expert);
            nodeLoad[best] += share;
        }

        var replicas = new List<ExpertReplica>[weights.Length];
        for (int e = 0; e < replicas.Length; e++) replicas[e] = [];
        for (int i = 0; i < nodes; i++)
        {
            held[i].Sort();
            for (int s = 0; s < held[i].Count; s++) replicas[held[i][s]].Add(new ExpertReplica(i, s));
        }
        return new LayerPlacement(layer, nodes, replicas.Select(r => r.ToArray()).ToArray());
    }
}
