namespace Cluster.ExpertNode.Placement;

/// <summary>
/// The share of routed tokens each node is expected to serve under a plan, when replicas split their expert's
/// tokens evenly (as the attention node's round robin does). Each layer's tokens count as 1, so a node's load is
/// in "layers' worth of tokens" and the loads sum to the number of MoE layers. <see cref="StepMaxOverMean"/> is the
/// sum over layers of the busiest node's load over the sum of the mean loads: a step waits for each layer's busiest
/// node in turn, so that is what imbalance costs a step, where the totals of <see cref="MaxOverMean"/> even out
/// across layers.
/// </summary>
public sealed record ExpectedLoad(double[] NodeLoad, int[] NodeSlots, double MaxOverMean, double WorstLayerMaxOverMean, double StepMaxOverMean)
{
    public static ExpectedLoad Of(PlacementPlan plan, ExpertLoad? load = null)
    {
        int nodes = plan.Nodes.Count;
        var total = new double[nodes];
        var slots = new int[nodes];
        double worst = 0, busiest = 0;
        foreach (LayerPlacement layer in plan.Layers)
        {
            double[] w = PlacementPlanner.LayerWeights(load, layer.Layer, plan.RoutedExperts);
            double sum = w.Sum();
            var perNode = new double[nodes];
            for (int e = 0; e < layer.Experts; e++)
            {
                ReadOnlySpan<ExpertReplica> replicas = layer.ReplicasOf(e);
                foreach (ExpertReplica r in replicas) perNode[r.Node] += w[e] / sum / replicas.Length;
            }
            for (int i = 0; i < nodes; i++)
            {
                total[i] += perNode[i];
                slots[i] += layer.SlotsOn(i).Length;
            }
            worst = Math.Max(worst, perNode.Max() / perNode.Average());
            busiest += perNode.Max();
        }
        // The mean node carries 1 / nodes of each layer.
        return new ExpectedLoad(total, slots, total.Max() / total.Average(), worst, busiest / (plan.Layers.Count / (double)nodes));
    }
}
