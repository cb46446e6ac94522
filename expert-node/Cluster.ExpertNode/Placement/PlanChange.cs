namespace Cluster.ExpertNode.Placement;

/// <summary>
/// What moving from one plan to the next asks of each expert node: the (layer, expert) pairs it must load and the
/// ones it may drop. Slots are keyed by node id, so nodes added or drained count as all loaded or all dropped.
/// </summary>
public sealed record PlanChange(IReadOnlyDictionary<string, IReadOnlyList<(int Layer, int Expert)>> Loads,
    IReadOnlyDictionary<string, IReadOnlyList<(int Layer, int Expert)>> Drops)
{
    public int LoadedExperts => Loads.Values.Sum(l => l.Count);
    public int DroppedExperts => Drops.Values.Sum(l => l.Count);

    public static PlanChange Between(PlacementPlan? before, PlacementPlan after)
    {
        var loads = new Dictionary<string, IReadOnlyList<(int, int)>>(StringComparer.Ordinal);
        var drops = new Dictionary<string, IReadOnlyList<(int, int)>>(StringComparer.Ordinal);
        var ids = after.Nodes.Select(n => n.Id).Concat(before?.Nodes.Select(n => n.Id) ?? []).Distinct(StringComparer.Ordinal);
        foreach (string id in ids)
        {
            HashSet<(int, int)> had = Held(before, id), has = Held(after, id);
            loads[id] = has.Where(x => !had.Contains(x)).Order().ToArray();
            drops[id] = had.Where(x => !has.Contains(x)).Order().ToArray();
        }
        return new PlanChange(loads, drops);
    }

    /// <summary>The (layer, expert) pairs node <paramref name="id"/> hosts under <paramref name="plan"/>; none when it is not in it.</summary>
    public static HashSet<(int Layer, int Expert)> Held(PlacementPlan? plan, string id)
    {
        var held = new HashSet<(int, int)>();
        if (plan is null) return held;
        int node = -1;
        for (int i = 0; i < plan.Nodes.Count; i++) if (plan.Nodes[i].Id == id) node = i;
        if (node < 0) return held;
        foreach (LayerPlacement layer in plan.Layers)
            foreach (int e in layer.SlotsOn(node)) held.Add((layer.Layer, e));
        return held;
    }
}
