using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;

namespace Cluster.ExpertNode.Tests;

/// <summary>A prepare loads while the node serves: nothing a Run needs is held while the next plan's slots are read.</summary>
public class PrepareWhileServingTests
{
    [Fact]
    public async Task A_prepare_held_inside_its_loading_does_not_hold_a_run_and_then_serves_both_versions()
    {
        ModelConfig config = TinyCheckpoint.Config;
        using Checkpoint mapped = Checkpoint.Open(TinyCheckpoint.Dir, HostedExperts.IsRoutedExpertTensor);
        PlacementPlan start = PlacementPlanner.Plan(config, PlacementPlanner.LoopbackNodes(2, 7100), null, 0);
        using var entered = new ManualResetEventSlim();
        using var proceed = new ManualResetEventSlim();
        int block = 0;
        using HostedExperts hosted = HostedExperts.Load(config, start, "expert-0", names =>
        {
            // The next plan's source is held open until the test lets it go: the loading is in progress meanwhile.
            if (Volatile.Read(ref block) == 1)
            {
                entered.Set();
                proceed.Wait(TimeSpan.FromSeconds(60));
            }
            return new CheckpointSubset(mapped, names);
        });
        PlacementPlan next = Rebalancer.Rebalance(start, RebalancerTests.Skewed(config));
        Volatile.Write(ref block, 1);
        Task<(int Slots, long Bytes)> prepare = Task.Factory.StartNew(() => hosted.Prepare(next), TaskCreationOptions.LongRunning);
        Assert.True(entered.Wait(TimeSpan.FromSeconds(30)), "the prepare never reached its loading");

        int layer = TinyCheckpoint.MoeLayers[0];
        int[] ids = start.Layer(layer).SlotsOn(0)[..config.NumExpertsPerTok].ToArray();
        float[] rows = TinyCheckpoint.Rows(1, 3), weights = [.. ids.Select(_ => 1f / ids.Length)];
        var output = new float[config.HiddenSize];
        Task run = Task.Run(() => hosted.Run(layer, rows, 1, ids, weights, output));
        Assert.Same(run, await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(20))));
        await run;
        Assert.False(prepare.IsCompleted);
        Assert.Equal([1UL], hosted.Versions);

        // The run was a real one: the local experts' result on the same rows.
        var expected = new float[config.HiddenSize];
        RoutedExperts.Load(mapped, config, layer, ids.Distinct()).Run(rows, 1, ids, weights, expected);
        Assert.Equal(expected, output);

        proceed.Set();
        Assert.True((await prepare).Slots > 0);
        Assert.Equal([1UL, 2UL], hosted.Versions);
    }
}
