using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.ExpertNode.Placement;

namespace Cluster.ExpertNode.Tests;

public class RebalancerTests
{
    private static readonly ModelConfig Small = SyntheticPresets.Small;

    /// <summary>Zipf-like load (exponent 1.2) with the hottest experts at the ids a skewed checkpoint gives them, a different order per layer.</summary>
    internal static ExpertLoad Skewed(ModelConfig config, double skew = 1.2, int seed = 1)
    {
        double[] byRank = ExpertSkew.TargetFractions(config.NRoutedExperts, config.NumExpertsPerTok, skew);
        var tokens = new Dictionary<int, double[]>();
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            if (!config.IsMoeLayer(layer)) continue;
            int[] ranked = ExpertSkew.ExpertOfRank(config, seed, $"model.layers.{layer}.mlp.gate.e_score_correction_bias", skew);
            var t = new double[config.NRoutedExperts];
            for (int r = 0; r < t.Length; r++) t[ranked[r]] = Math.Round(10000 * byRank[r]);
            tokens[layer] = t;
        }
        return new ExpertLoad(tokens);
    }

    [Theory]
    [InlineData(4, 0, 1)]
    [InlineData(4, 8, 1)]
    [InlineData(3, 6, 2)]
    public void A_rebalance_evens_the_load_moves_fewer_experts_than_a_fresh_plan_and_keeps_the_invariants(int nodes, int redundant, int replicas)
    {
        PlacementPlan start = PlacementPlanner.Plan(Small, PlacementPlanner.LoopbackNodes(nodes, 7100), null, redundant, replicas: replicas);
        ExpertLoad load = Skewed(Small);
        PlacementPlan next = Rebalancer.Rebalance(start, load);

        Assert.Equal(start.Version + 1, next.Version);
        PlacementPlan.Parse(next.ToJson()).CheckFits(Small);
        Assert.Equal(replicas, Rebalancer.MinimumReplicas(next));
        foreach (LayerPlacement layer in next.Layers) Assert.Equal(start.Layer(layer.Layer).ReplicaCount, layer.ReplicaCount);

        double before = ExpectedLoad.Of(start, load).MaxOverMean, after = ExpectedLoad.Of(next, load).MaxOverMean;
        Assert.True(after <= 1.1, $"max/mean {before:F3} -> {after:F3}");
        Assert.True(after < before, $"max/mean {before:F3} -> {after:F3}");
        // What a step waits for, each layer's busiest node: between the all-layer total and the worst layer, and
        // evened by the rebalance from a start plan that assumed equal load.
        foreach (ExpectedLoad e in new[] { ExpectedLoad.Of(start, load), ExpectedLoad.Of(next, load) })
            Assert.InRange(e.StepMaxOverMean, e.MaxOverMean - 1e-9, e.WorstLayerMaxOverMean + 1e-9);
        double stepBefore = ExpectedLoad.Of(start, load).StepMaxOverMean, stepAfter = ExpectedLoad.Of(next, load).StepMaxOverMean;
        Assert.True(stepAfter < stepBefore && stepAfter <= 1.1, $"busiest node per layer over mean {stepBefore:F3} -> {stepAfter:F3}");

        PlacementPlan fresh = PlacementPlanner.Plan(Small, start.Nodes, null, redundant, load, version: 2, replicas: replicas);
        // Relabelling keeps every layer as even as the fresh plan's; only how layers' small excesses add up differs.
        Assert.True(ExpectedLoad.Of(next, load).WorstLayerMaxOverMean <= ExpectedLoad.Of(fresh, load).WorstLayerMaxOverMean + 1e-9);
        int moved = PlanChange.Between(start, next).LoadedExperts, freshMoved = PlanChange.Between(start, fresh).LoadedExperts;
        Assert.True(moved < freshMoved, $"rebalance loads {moved} experts, a fresh plan {freshMoved}");

        // The same load again: nothing to move.
        Assert.Equal(0, PlanChange.Between(next, Rebalancer.Rebalance(next, load)).LoadedExperts);
    }

    [Fact]
    public void Replicas_and_redundant_slots_change_and_added_nodes_fill_while_drained_ones_empty()
    {
        PlacementPlan start = PlacementPlanner.Plan(Small, PlacementPlanner.LoopbackNodes(3, 7100), null, 0);
        ExpertLoad load = Skewed(Small);

        PlacementPlan twice = Rebalancer.Rebalance(start, load, replicas: 2, redundantExperts: 4);
        Assert.Equal(2, Rebalancer.MinimumReplicas(twice));
        Assert.All(twice.Layers, l => Assert.Equal(2 * Small.NRoutedExperts + 4, l.ReplicaCount));
        PlacementPlan.Parse(twice.ToJson()).CheckFits(Small);

        IReadOnlyList<ExpertNodeAddress> four = [.. start.Nodes, new ExpertNodeAddress("expert-3", "127.0.0.1:7103")];
        PlacementPlan grown = Rebalancer.Rebalance(start, load, nodes: four);
        Assert.Equal(4, grown.Nodes.Count);
        PlanChange change = PlanChange.Between(start, grown);
        Assert.Equal(PlanChange.Held(grown, "expert-3").Count, change.Loads["expert-3"].Count);
        Assert.True(change.Loads["expert-3"].Count >= Small.NRoutedExperts / 4 * grown.Layers.Count - grown.Layers.Count);

        IReadOnlyList<ExpertNodeAddress> drained = [start.Nodes[0], start.Nodes[2]];
        PlacementPlan shrunk = Rebalancer.Rebalance(start, load, nodes: drained);
        Assert.Empty(PlanChange.Held(shrunk, "expert-1"));
        Assert.Equal(PlanChange.Held(start, "expert-1").Count, PlanChange.Between(start, shrunk).Drops["expert-1"].Count);
        PlacementPlan.Parse(shrunk.ToJson()).CheckFits(Small);
    }
}
