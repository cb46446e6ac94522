using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.ExpertNode.Placement;

namespace Cluster.ExpertNode.Tests;

public class PlacementPlannerTests
{
    private static readonly ModelConfig Small = SyntheticPresets.Small;

    private static int[] Copies(LayerPlacement layer) =>
        Enumerable.Range(0, layer.Experts).Select(e => layer.ReplicasOf(e).Length).ToArray();

    /// <summary>Every plan the planner makes satisfies the plan's own invariants (its JSON parses back).</summary>
    private static PlacementPlan PlanChecked(ModelConfig config, int nodes, int redundant, ExpertLoad? load = null, int? slots = null)
    {
        PlacementPlan plan = PlacementPlanner.Plan(config, PlacementPlanner.LoopbackNodes(nodes, 7100), slots, redundant, load);
        PlacementPlan back = PlacementPlan.Parse(plan.ToJson());
        back.CheckFits(config);
        return plan;
    }

    [Fact]
    public void MinimumReplicasPutEveryExpertOnThatManyNodesBeforeTheRedundantOnes()
    {
        PlacementPlan plan = PlacementPlanner.Plan(Small, PlacementPlanner.LoopbackNodes(3, 7100), null, 6, replicas: 2);
        PlacementPlan.Parse(plan.ToJson()).CheckFits(Small);
        foreach (LayerPlacement layer in plan.Layers)
        {
            for (int e = 0; e < layer.Experts; e++)
            {
                int[] nodes = [.. layer.ReplicasOf(e).ToArray().Select(r => r.Node)];
                Assert.True(nodes.Length >= 2, $"layer {layer.Layer} expert {e} has {nodes.Length} replicas");
                Assert.Equal(nodes.Length, nodes.Distinct().Count());
            }
            Assert.Equal(Small.NRoutedExperts * 2 + 6, layer.ReplicaCount);
        }
        var e1 = Assert.Throws<ArgumentException>(() => PlacementPlanner.Plan(Small, PlacementPlanner.LoopbackNodes(3, 7100), null, 0, replicas: 4));
        Assert.Contains("--expert-replicas 4 needs 1..3", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => PlacementPlanner.Plan(Small, PlacementPlanner.LoopbackNodes(3, 7100), null, 1, replicas: 3));
        Assert.Contains("at most 0 extra with 3 replicas each", e2.Message);
    }

    [Fact]
    public void WithoutLoadEveryExpertOnceAndNodesEvenlyFilled()
    {
        PlacementPlan plan = PlanChecked(Small, nodes: 4, redundant: 0);
        Assert.Equal(Enumerable.Range(0, Small.NumHiddenLayers).Where(Small.IsMoeLayer), plan.Layers.Select(l => l.Layer));
        foreach (LayerPlacement layer in plan.Layers)
        {
            Assert.All(Copies(layer), c => Assert.Equal(1, c));
            for (int n = 0; n < 4; n++) Assert.Equal(16, layer.SlotsOn(n).Length);
        }
        ExpectedLoad load = ExpectedLoad.Of(plan);
        Assert.Equal(1.0, load.MaxOverMean, 9);
        Assert.Equal(plan.Layers.Count, load.NodeLoad.Sum(), 9);
    }

    [Fact]
    public void WithoutLoadReplicasSpreadOverExpertsAndNeverShareANode()
    {
        PlacementPlan plan = PlanChecked(Small, nodes: 3, redundant: 2);
        var replicated = new HashSet<int>();
        foreach (LayerPlacement layer in plan.Layers)
        {
            int[] copies = Copies(layer);
            Assert.Equal(Small.NRoutedExperts + 2, copies.Sum());
            Assert.All(copies, c => Assert.InRange(c, 1, 2));
            for (int e = 0; e < layer.Experts; e++)
            {
                var nodes = layer.ReplicasOf(e).ToArray().Select(r => r.Node).ToArray();
                Assert.Equal(nodes.Length, nodes.Distinct().Count());
                if (copies[e] == 2) replicated.Add(e);
            }
            // 66 slots on 3 nodes: 22 each.
            for (int n = 0; n < 3; n++) Assert.Equal(22, layer.SlotsOn(n).Length);
        }
        // Ties rotate with the layer: 5 MoE layers x 2 replicas cover 10 different experts.
        Assert.Equal(2 * plan.Layers.Count, replicated.Count);
    }

    [Fact]
    public void HottestExpertsGetTheReplicas()
    {
        var tokens = new Dictionary<int, double[]>();
        foreach (int layer in Enumerable.Range(0, Small.NumHiddenLayers).Where(Small.IsMoeLayer))
        {
            var t = Enumerable.Repeat(10.0, Small.NRoutedExperts).ToArray();
            t[5] = 1000;
            t[9] = 600;
            tokens[layer] = t;
        }
        PlacementPlan plan = PlanChecked(Small, nodes: 4, redundant: 3, new ExpertLoad(tokens));
        foreach (LayerPlacement layer in plan.Layers)
        {
            int[] copies = Copies(layer);
            // 1000/1 -> 5 gets one; 600/1 > 500 -> 9; 500 > 300 -> 5 again.
            Assert.Equal(3, copies[5]);
            Assert.Equal(2, copies[9]);
            Assert.Equal(Small.NRoutedExperts - 2, copies.Count(c => c == 1));
        }
    }

    [Fact]
    public void SkewedLoadIsBalancedAcrossNodesWithinThreePercent()
    {
        // Zipf-like load as seen on real traffic: the hottest expert ~60x the coldest.
        var rng = new Random(3);
        var tokens = new Dictionary<int, double[]>();
        foreach (int layer in Enumerable.Range(0, Small.NumHiddenLayers).Where(Small.IsMoeLayer))
        {
            int[] rank = Enumerable.Range(0, Small.NRoutedExperts).OrderBy(_ => rng.Next()).ToArray();
            tokens[layer] = rank.Select(r => Math.Round(100000.0 / (r + 1))).ToArray();
        }
        var load = new ExpertLoad(tokens);
        ExpectedLoad balanced = ExpectedLoad.Of(PlanChecked(Small, nodes: 8, redundant: 8, load), load);
        ExpectedLoad unreplicated = ExpectedLoad.Of(PlanChecked(Small, nodes: 8, redundant: 0, load), load);
        // The hottest expert alone is ~21% of a layer's tokens, 1.7x a node's fair share: only replicas can split it.
        Assert.True(unreplicated.WorstLayerMaxOverMean > 1.6, $"unreplicated worst layer {unreplicated.WorstLayerMaxOverMean:F3}");
        Assert.True(balanced.WorstLayerMaxOverMean < 1.03, $"worst layer max/mean {balanced.WorstLayerMaxOverMean:F4}");
        Assert.True(balanced.MaxOverMean < 1.03, $"max/mean {balanced.MaxOverMean:F4}");
    }

    [Fact]
    public void RandomPlansKeepTheInvariantsAndTheGreedyBound()
    {
        var rng = new Random(17);
        for (int trial = 0; trial < 200; trial++)
        {
            int nodes = rng.Next(1, 7), experts = Small.NRoutedExperts;
            int redundant = rng.Next(0, Math.Min(experts * (nodes - 1), 3 * nodes) + 1);
            var tokens = new Dictionary<int, double[]>();
            double skew = rng.NextDouble() * 2;
            foreach (int layer in Enumerable.Range(0, Small.NumHiddenLayers).Where(Small.IsMoeLayer))
                tokens[layer] = Enumerable.Range(0, experts).Select(_ => Math.Floor(1000 * Math.Pow(rng.NextDouble(), 1 + 4 * skew))).ToArray();
            var load = new ExpertLoad(tokens);
            PlacementPlan plan = PlanChecked(Small, nodes, redundant, load);
            int slots = (experts + redundant + nodes - 1) / nodes;
            foreach (LayerPlacement layer in plan.Layers)
            {
                int[] copies = Copies(layer);
                Assert.Equal(experts + redundant, copies.Sum());
                double[] w = tokens[layer.Layer];
                double sum = w.Sum() > 0 ? w.Sum() : experts;
                var perNode = new double[nodes];
                double largestShare = 0;
                for (int e = 0; e < experts; e++)
                {
                    double share = (w.Sum() > 0 ? w[e] : 1) / sum / copies[e];
                    largestShare = Math.Max(largestShare, share);
                    foreach (ExpertReplica r in layer.ReplicasOf(e)) perNode[r.Node] += share;
                }
                for (int n = 0; n < nodes; n++) Assert.InRange(layer.SlotsOn(n).Length, 0, slots);
                // Greedy least-loaded placement: no node ends more than one replica's share above the mean.
                Assert.True(perNode.Max() <= 1.0 / nodes + largestShare + 1e-12,
                    $"trial {trial}: {nodes} nodes, {redundant} redundant, layer {layer.Layer}: max {perNode.Max():F4}, mean {1.0 / nodes:F4}, largest share {largestShare:F4}");
            }
        }
    }

    [Fact]
    public void ExplicitSlotsPerNodeLeaveRoomAndAreRespected()
    {
        PlacementPlan plan = PlanChecked(Small, nodes: 2, redundant: 4, slots: 40);
        foreach (LayerPlacement layer in plan.Layers)
        {
            Assert.All(new[] { 0, 1 }, n => Assert.InRange(layer.SlotsOn(n).Length, 1, 40));
            Assert.Equal(68, layer.SlotsOn(0).Length + layer.SlotsOn(1).Length);
        }
    }

    [Theory]
    [InlineData(2, -1, null, "must not be negative")]
    [InlineData(2, 65, null, "at most 64 extra")]
    [InlineData(1, 1, null, "at most 0 extra")]
    [InlineData(2, 4, 33, "each layer needs 68")]
    public void ImpossiblePlansAreOneLineErrors(int nodes, int redundant, int? slots, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => PlacementPlanner.Plan(Small, PlacementPlanner.LoopbackNodes(nodes, 7100), slots, redundant));
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void PlanJsonRoundTripsExactly()
    {
        PlacementPlan plan = PlacementPlanner.Plan(Small, PlacementPlanner.LoopbackNodes(3, 9000), null, 5, version: 42);
        using var dir = new TempDir();
        string path = dir.File("plan.json");
        plan.Save(path);
        PlacementPlan back = PlacementPlan.Load(path);
        Assert.Equal(42UL, back.Version);
        Assert.Equal(plan.Nodes, back.Nodes);
        Assert.Equal(plan.ToJson(), back.ToJson());
        foreach (LayerPlacement l in plan.Layers)
            for (int e = 0; e < l.Experts; e++) Assert.Equal(l.ReplicasOf(e).ToArray(), back.Layer(l.Layer).ReplicasOf(e).ToArray());

        PlacementPlan moved = plan.WithEndpoints(["10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3"]);
        Assert.Equal("10.0.0.2:2", moved.Nodes[1].Endpoint);
        Assert.Equal(plan.Version, moved.Version);
    }

    private const string GoodNodes = """[{"id":"a","endpoint":"127.0.0.1:1"},{"id":"b","endpoint":"127.0.0.1:2"}]""";

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "the top level must be an object")]
    [InlineData("""{"routed_experts":2,"nodes":[],"layers":[]}""", "missing version")]
    [InlineData("""{"version":0,"routed_experts":2,"nodes":[],"layers":[]}""", "version must be at least 1")]
    [InlineData("""{"version":1,"routed_experts":2,"nodes":[{"id":"a","endpoint":"nohost"}],"layers":[]}""", "nodes[0].endpoint: 'nohost' is not host:port")]
    [InlineData("""{"version":1,"routed_experts":2,"nodes":[{"id":"a","endpoint":"h:1"},{"id":"a","endpoint":"h:2"}],"layers":[]}""", "nodes[1].id node 'a' appears twice")]
    [InlineData("""{"version":1,"routed_experts":2,"nodes":NODES,"layers":[{"layer":1,"experts":[[{"node":"a","slot":0}]]}]}""", "layers[0].experts has 1 entries but routed_experts is 2")]
    [InlineData("""{"version":1,"routed_experts":2,"nodes":NODES,"layers":[{"layer":1,"experts":[[{"node":"a","slot":0}],[{"node":"c","slot":0}]]}]}""", "layers[0].experts[1][0].node unknown node 'c'")]
    [InlineData("""{"version":1,"routed_experts":2,"nodes":NODES,"layers":[{"layer":1,"experts":[[{"node":"a","slot":0}],[{"node":"a","slot":0}]]}]}""", "slot 0 of node 'a' is used twice in layer 1")]
    [InlineData("""{"version":1,"routed_experts":2,"nodes":NODES,"layers":[{"layer":1,"experts":[[{"node":"a","slot":0},{"node":"a","slot":1}],[{"node":"b","slot":0}]]}]}""", "expert 0 has two replicas on node 'a'")]
    [InlineData("""{"version":1,"routed_experts":2,"nodes":NODES,"layers":[{"layer":1,"experts":[[{"node":"a","slot":1}],[{"node":"b","slot":0}]]}]}""", "node 'a' has 1 slots but no slot 0")]
    [InlineData("""{"version":1,"routed_experts":2,"nodes":NODES,"layers":[{"layer":1,"experts":[[],[{"node":"b","slot":0}]]}]}""", "layers[0].experts[0] has no replica")]
    [InlineData("""{"version":1,"routed_experts":2,"nodes":NODES,"layers":[{"layer":1,"experts":[[{"node":"a","slot":"x"}],[{"node":"b","slot":0}]]}]}""", "layers[0].experts[0][0].slot must be an integer")]
    public void BadPlansAreOneLineErrorsNamingTheField(string json, string message)
    {
        var e = Assert.Throws<InvalidDataException>(() => PlacementPlan.Parse(json.Replace("NODES", GoodNodes), "plan.json"));
        Assert.StartsWith("plan.json: ", e.Message);
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void PlanForAnotherModelIsRefused()
    {
        PlacementPlan plan = PlacementPlanner.Plan(SyntheticPresets.Tiny, PlacementPlanner.LoopbackNodes(2, 7100));
        var e = Assert.Throws<InvalidDataException>(() => plan.CheckFits(Small));
        Assert.Contains("plan has 32 routed experts per layer but the model has 64", e.Message);
    }

    [Theory]
    [InlineData("[1]", "the top level must be an object")]
    [InlineData("""{"layers":[{"layer":0,"tokens":[]}]}""", "layers[0].layer 0 is not a MoE layer of the model (MoE layers: 1, 2, 3, 4, 5)")]
    [InlineData("""{"layers":[{"layer":1,"tokens":[1,2]}]}""", "layers[0].tokens has 2 counts but the model has 64 routed experts")]
    [InlineData("""{"layers":[{"layer":1,"tokens":TOKENS},{"layer":1,"tokens":TOKENS}]}""", "layers[1].layer layer 1 appears twice")]
    [InlineData("""{"layers":[{"layer":1,"tokens":TOKENS}]}""", "no counts for MoE layer 2")]
    [InlineData("""{"layers":[{"layer":1,"tokens":NEGATIVE}]}""", "layers[0].tokens[63] must not be negative (got -1)")]
    [InlineData("""{"layers":[{"layer":1,"tokens":"many"}]}""", "layers[0].tokens must be an array (got string)")]
    public void BadLoadFilesAreOneLineErrorsNamingTheField(string json, string message)
    {
        string tokens = "[" + string.Join(",", Enumerable.Repeat("1", 64)) + "]";
        string negative = "[" + string.Join(",", Enumerable.Repeat("1", 63)) + ",-1]";
        var e = Assert.Throws<InvalidDataException>(() => ExpertLoad.Parse(json.Replace("TOKENS", tokens).Replace("NEGATIVE", negative), Small, "load.json"));
        Assert.StartsWith("load.json: ", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void LoadFileRoundTrips()
    {
        var tokens = new Dictionary<int, double[]>();
        foreach (int layer in Enumerable.Range(0, Small.NumHiddenLayers).Where(Small.IsMoeLayer))
            tokens[layer] = Enumerable.Range(0, 64).Select(e => (double)(e * layer)).ToArray();
        ExpertLoad back = ExpertLoad.Parse(new ExpertLoad(tokens).ToJson(), Small);
        foreach ((int layer, double[] t) in tokens) Assert.Equal(t, back.Tokens(layer).ToArray());
    }
}
