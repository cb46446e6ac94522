using Cluster.Engine.Backend;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;

namespace Cluster.ExpertNode.Tests;

/// <summary>
/// An expert node runs its slots on whatever expert backend it is given (the seam a GPU expert backend plugs into):
/// every layer it hosts, at start and after a live plan change, is one the backend composed from exactly the experts
/// the node holds, and what the backend's layers compute is what the node serves.
/// </summary>
public class ExpertBackendTests
{
    /// <summary>The CPU backend's layers, recorded, with each run's output scaled so that the test sees them used.</summary>
    private sealed class RecordingBackend : IExpertBackend
    {
        public List<(int Layer, int[] Hosted)> Loads { get; } = [];

        public IHostedExperts LoadExperts(ITensorSource source, ModelConfig config, int layer, IEnumerable<int>? hosted = null)
        {
            int[] experts = [.. hosted ?? []];
            lock (Loads) Loads.Add((layer, experts));
            return new Doubled(CpuBackend.Default.LoadExperts(source, config, layer, experts));
        }

        private sealed class Doubled(IHostedExperts inner) : IHostedExperts
        {
            public int Layer => inner.Layer;
            public bool Hosts(int expert) => inner.Hosts(expert);

            public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null)
            {
                inner.Run(rows, n, ids, weights, output, shared);
                for (int i = 0; i < output.Length; i++) output[i] *= 2;
            }
        }
    }

    [Fact]
    public void Every_hosted_layer_comes_from_the_backend_at_start_and_after_a_plan_change()
    {
        ModelConfig config = TinyCheckpoint.Config;
        using Checkpoint mapped = Checkpoint.Open(TinyCheckpoint.Dir, HostedExperts.IsRoutedExpertTensor);
        PlacementPlan start = PlacementPlanner.Plan(config, PlacementPlanner.LoopbackNodes(2, 7100), null, 0);
        var backend = new RecordingBackend();
        using HostedExperts hosted = HostedExperts.Load(config, start, "expert-0", names => new CheckpointSubset(mapped, names), backend: backend);

        foreach (int layer in TinyCheckpoint.MoeLayers)
        {
            var last = backend.Loads.FindLast(l => l.Layer == layer);
            Assert.Equal(start.Layer(layer).SlotsOn(0).ToArray().Distinct().Order(), last.Hosted.Order());
        }

        int moe = TinyCheckpoint.MoeLayers[0];
        int[] ids = start.Layer(moe).SlotsOn(0)[..config.NumExpertsPerTok].ToArray();
        float[] rows = TinyCheckpoint.Rows(2, 5), weights = [.. Enumerable.Repeat(1f / ids.Length, 2 * ids.Length)];
        int[] pairs = [.. ids, .. ids];
        var served = new float[2 * config.HiddenSize];
        hosted.Run(moe, rows, 2, pairs, weights, served);
        var local = new float[2 * config.HiddenSize];
        RoutedExperts.Load(mapped, config, moe, ids.Distinct()).Run(rows, 2, pairs, weights, local);
        for (int i = 0; i < local.Length; i++) Assert.Equal(2 * local[i], served[i]);

        int before = backend.Loads.Count;
        PlacementPlan next = Rebalancer.Rebalance(start, RebalancerTests.Skewed(config));
        hosted.Prepare(next);
        Assert.True(backend.Loads.Count > before, "the plan change composed no layer through the backend");
        foreach (var (layer, experts) in backend.Loads.Skip(before))
            foreach (int e in next.Layer(layer).SlotsOn(next.NodeIndex("expert-0")).ToArray().Distinct())
                Assert.Contains(e, experts);
    }
}
