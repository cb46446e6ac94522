using Cluster.Engine.Checkpoints;
using Cluster.Engine.Model;
using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Control;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Grpc.Core;

namespace Cluster.ExpertNode.Tests;

/// <summary>
/// Plans change while steps run: a rebalance, a node added, a node drained. Every step during and after the change
/// gives the local experts' result (F32 dispatch: only the order of float additions may differ), the attention side
/// and every expert node end on the new version, and the slots only the old plan had are dropped.
/// </summary>
public class LiveRebalanceTests
{
    private static readonly Lazy<(Checkpoint Checkpoint, Dictionary<int, RoutedExperts> Layers)> s_local = new(() =>
    {
        var ck = Checkpoint.Open(TinyCheckpoint.Dir);
        return (ck, TinyCheckpoint.MoeLayers.ToDictionary(l => l, l => RoutedExperts.Load(ck, TinyCheckpoint.Config, l)));
    });

    private static int Hidden => TinyCheckpoint.Config.HiddenSize;
    private static int K => TinyCheckpoint.Config.NumExpertsPerTok;

    /// <summary>
    /// Runs steps (every MoE layer in order, random rows and choices) until <paramref name="stop"/>, checking each
    /// against the local experts; returns the number of steps and the plan versions they started under.
    /// </summary>
    private static async Task<(int Steps, HashSet<ulong> Versions)> StepAsync(ExpertStreams streams, CancellationToken stop)
    {
        await Task.Yield();
        var remote = TinyCheckpoint.MoeLayers.ToDictionary(l => l, l => streams.ForLayer(l, TensorDType.F32));
        var rng = new Random(5);
        int steps = 0;
        var versions = new HashSet<ulong>();
        while (!stop.IsCancellationRequested || steps < 3)
        {
            int n = 1 + rng.Next(12);
            foreach (int layer in TinyCheckpoint.MoeLayers)
            {
                float[] rows = TinyCheckpoint.Rows(n, rng.Next());
                var ids = new int[n * K];
                var weights = new float[n * K];
                for (int r = 0; r < n; r++)
                {
                    int[] pick = Enumerable.Range(0, TinyCheckpoint.Config.NRoutedExperts).OrderBy(_ => rng.Next()).Take(K).ToArray();
                    for (int j = 0; j < K; j++) (ids[r * K + j], weights[r * K + j]) = (pick[j], (float)rng.NextDouble());
                }
                var expected = new float[n * Hidden];
                s_local.Value.Layers[layer].Run(rows, n, ids, weights, expected);
                var actual = new float[n * Hidden];
                remote[layer].Run(rows, n, ids, weights, actual);
                if (layer == TinyCheckpoint.MoeLayers[0]) versions.Add(streams.Plan.Version);
                for (int i = 0; i < expected.Length; i++)
                    Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i])), $"step {steps} layer {layer} element {i}: {expected[i]} vs {actual[i]}");
            }
            steps++;
        }
        return (steps, versions);
    }

    private static HashSet<(int, int)> Hosted(ExpertHost host) => host.Experts.Slots().Select(s => (s.Layer, s.Expert)).ToHashSet();

    [Fact]
    public async Task A_rebalance_while_steps_run_changes_no_result_moves_the_version_everywhere_and_drops_the_old_slots()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(3, 2);
        PlacementPlan before = cluster.Plan;
        PlacementPlan next = Rebalancer.Rebalance(before, RebalancerTests.Skewed(TinyCheckpoint.Config));
        PlanChange change = PlanChange.Between(before, next);
        Assert.True(change.LoadedExperts > 0, "the skewed load moves experts");

        using var stop = new CancellationTokenSource();
        Task<(int Steps, HashSet<ulong> Versions)> steps = StepAsync(cluster.Streams, stop.Token);
        await Task.Delay(200);
        RolloutReport report = await PlanRollout.RunAsync(before, next, [cluster.Streams]);
        await Task.Delay(200);
        stop.Cancel();
        (int count, HashSet<ulong> versions) = await steps;

        Assert.Equal([before.Version, next.Version], versions.Order());
        Assert.Equal(next.Version, cluster.Streams.Plan.Version);
        Assert.Equal(change.LoadedExperts, report.LoadedSlots);
        Assert.Equal(change.DroppedExperts, report.DroppedSlots);
        Assert.True(report.LoadedBytes > 0);
        foreach (ExpertHost host in cluster.Hosts)
        {
            Assert.Equal([next.Version], host.Experts.Versions);
            Assert.Equal(PlanChange.Held(next, host.NodeId), Hosted(host));
            ExpertNodeInfo info = await new Protos.V1.ExpertService.ExpertServiceClient(
                Transport.PeerChannel.ForAddress($"http://127.0.0.1:{host.Port}").Invoker).GetInfoAsync(new GetExpertInfoRequest());
            Assert.Equal(next.Version, info.PlanVersion);
            Assert.Equal([next.Version], info.HeldVersions);
            Assert.True(info.RowsServed > 0);
        }
        // The bytes held are the new plan's slots only.
        long expected = cluster.Hosts.Sum(h => HostedExperts.TensorNames(next, next.NodeIndex(h.NodeId)).Sum(name => s_local.Value.Checkpoint.Get(name).TotalBytes));
        Assert.Equal(expected, cluster.Hosts.Sum(h => h.LoadedBytes));
    }

    [Fact]
    public async Task A_prepare_that_fails_on_one_node_is_rolled_back_on_the_nodes_that_prepared()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(3, 2);
        PlacementPlan before = cluster.Plan;
        PlacementPlan next = Rebalancer.Rebalance(before, RebalancerTests.Skewed(TinyCheckpoint.Config));
        var heldBefore = cluster.Hosts.Select(Hosted).ToList();
        // The last node to prepare is gone: the first two prepare, then the rollout fails.
        await cluster.Hosts[2].DisposeAsync();
        cluster.Hosts.RemoveAt(2);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => PlanRollout.RunAsync(before, next, [cluster.Streams]));
        Assert.Contains($"plan version {next.Version} rolled back on 2 of 3 expert nodes, every attention node stays on {before.Version}", e.Message);
        Assert.Equal(before.Version, cluster.Streams.Plan.Version);
        for (int i = 0; i < cluster.Hosts.Count; i++)
        {
            Assert.Equal([before.Version], cluster.Hosts[i].Experts.Versions);
            Assert.Equal(heldBefore[i], Hosted(cluster.Hosts[i]));
        }
        // A node restarted now would start from the plan in use, not the abandoned one.
        Assert.Equal(before.Version, PlacementPlan.Load(cluster.PlanPath).Version);
    }

    [Fact]
    public async Task A_switch_that_fails_on_one_attention_node_is_rolled_back_on_the_nodes_that_switched()
    {
        await using SwitchRig rig = await SwitchRig.StartAsync();
        (ExpertCluster cluster, PlanAgentHost attention, PlacementPlan before, PlacementPlan next) = rig;
        var heldBefore = cluster.Hosts.Select(Hosted).ToList();

        // Steps run throughout: one routed by the abandoned version after the expert nodes forgot it would fail.
        using var stop = new CancellationTokenSource();
        Task<(int Steps, HashSet<ulong> Versions)> steps = StepAsync(cluster.Streams, stop.Token);
        await Task.Delay(100);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            PlanRollout.RunAsync(before, next, [attention.Switch, new UnreachableAttentionNode("attention-1")]));
        await Task.Delay(200);
        stop.Cancel();
        (int count, _) = await steps;

        Assert.Equal($"attention node attention-1 did not switch to plan version {next.Version}: {UnreachableAttentionNode.Reason}; "
            + $"rolled back: 1 attention node back on version {before.Version}, version {next.Version} abandoned on 3 of 3 expert nodes", e.Message);
        Assert.True(count > 3);
        Assert.Equal(before.Version, cluster.Streams.Plan.Version);
        // A restarted attention node or expert node would start from the plan in use, not the abandoned one.
        Assert.Equal(before.Version, PlacementPlan.Load(attention.PlanPath).Version);
        Assert.Equal(before.Version, PlacementPlan.Load(cluster.PlanPath).Version);
        for (int i = 0; i < cluster.Hosts.Count; i++)
        {
            Assert.Equal([before.Version], cluster.Hosts[i].Experts.Versions);
            Assert.Equal(heldBefore[i], Hosted(cluster.Hosts[i]));
        }
    }

    [Fact]
    public async Task A_node_whose_switch_timed_out_after_it_took_over_is_switched_back_before_the_version_is_abandoned()
    {
        await using SwitchRig rig = await SwitchRig.StartAsync();
        (ExpertCluster cluster, PlanAgentHost attention, PlacementPlan before, PlacementPlan next) = rig;

        var late = new SwitchedAfterTimeoutAttentionNode(attention.Switch);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => PlanRollout.RunAsync(before, next, [late]));

        Assert.Equal($"attention node {late.Name} did not switch to plan version {next.Version}: {SwitchedAfterTimeoutAttentionNode.Reason}; "
            + $"rolled back: 1 attention node back on version {before.Version}, version {next.Version} abandoned on 3 of 3 expert nodes", e.Message);
        // It had switched: routing by the abandoned version now would fail every step.
        Assert.Equal(before.Version, cluster.Streams.Plan.Version);
        Assert.Equal(before.Version, PlacementPlan.Load(attention.PlanPath).Version);
        Assert.All(cluster.Hosts, h => Assert.Equal([before.Version], h.Experts.Versions));
    }

    [Fact]
    public async Task A_switch_rollback_that_cannot_bring_every_attention_node_back_abandons_nothing()
    {
        await using SwitchRig rig = await SwitchRig.StartAsync();
        (ExpertCluster cluster, PlanAgentHost attention, PlacementPlan before, PlacementPlan next) = rig;

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => PlanRollout.RunAsync(before, next,
            [attention.Switch, new UnreachableAttentionNode("attention-1"), new GoneAfterSwitchAttentionNode("attention-2")]));

        Assert.Equal($"attention node attention-1 did not switch to plan version {next.Version}: {UnreachableAttentionNode.Reason}; "
            + $"rolled back: 1 attention node back on version {before.Version}, 1 attention node still on version {next.Version} "
            + $"(attention node attention-2: {UnreachableAttentionNode.Reason}), so every expert node keeps serving versions {before.Version} and {next.Version}", e.Message);
        Assert.Equal(before.Version, cluster.Streams.Plan.Version);
        Assert.Equal(before.Version, PlacementPlan.Load(attention.PlanPath).Version);
        // The node left on the new version keeps working: every expert node serves both.
        foreach (ExpertHost host in cluster.Hosts) Assert.Equal([before.Version, next.Version], host.Experts.Versions);
    }

    [Fact]
    public async Task An_attention_node_refuses_an_older_plan_unless_told_to_revert_and_its_plan_file_follows()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 0);
        await using PlanAgentHost attention = await PlanAgentHost.StartAsync("attention-0", cluster.Streams);
        PlacementPlan before = cluster.Plan;
        PlacementPlan next = Rebalancer.Rebalance(before, RebalancerTests.Skewed(TinyCheckpoint.Config));
        foreach (ExpertHost host in cluster.Hosts) host.Experts.Prepare(next);
        await attention.Switch.SwitchAsync(next, revert: false, CancellationToken.None);
        Assert.Equal(next.Version, PlacementPlan.Load(attention.PlanPath).Version);

        var refused = await Assert.ThrowsAsync<RpcException>(() => attention.Switch.SwitchAsync(before, revert: false, CancellationToken.None));
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Equal($"attention node attention-0: plan version {before.Version} is older than the one in use, {next.Version}", refused.Status.Detail);
        Assert.Equal(next.Version, cluster.Streams.Plan.Version);
        Assert.Equal(next.Version, PlacementPlan.Load(attention.PlanPath).Version);

        await attention.Switch.SwitchAsync(before, revert: true, CancellationToken.None);
        Assert.Equal(before.Version, cluster.Streams.Plan.Version);
        Assert.Equal(before.Version, PlacementPlan.Load(attention.PlanPath).Version);
    }

    [Fact]
    public async Task A_switch_given_up_while_a_step_runs_never_takes_over()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 0);
        PlacementPlan before = cluster.Plan;
        PlacementPlan next = Rebalancer.Rebalance(before, RebalancerTests.Skewed(TinyCheckpoint.Config));
        foreach (ExpertHost host in cluster.Hosts) host.Experts.Prepare(next);

        cluster.Streams.BeginStep();
        using var giveUp = new CancellationTokenSource();
        Task staged = cluster.Streams.SwitchAsync(next, TimeSpan.FromSeconds(10), cancel: giveUp.Token);
        Assert.False(staged.IsCompleted, "the switch waits for the step");
        giveUp.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => staged);
        // The end of the step would have applied a staged plan.
        cluster.Streams.EndStep();
        Assert.Equal(before.Version, cluster.Streams.Plan.Version);

        await cluster.Streams.SwitchAsync(next, TimeSpan.FromSeconds(10));
        Assert.Equal(next.Version, cluster.Streams.Plan.Version);
    }

    [Fact]
    public async Task A_node_added_takes_rows_and_a_drained_node_gets_none_once_switched()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 0);
        PlacementPlan before = cluster.Plan;
        using var dir = new TempDir();

        // The new node starts from the plan that includes it (it has nothing to serve before).
        var added = new ExpertNodeAddress("expert-2", "127.0.0.1:1");
        PlacementPlan grownAt0 = Rebalancer.Rebalance(before, null, nodes: [.. before.Nodes, added]);
        grownAt0.Save(dir.File("grown.json"));
        ExpertHost third = await ExpertHost.StartAsync(new ExpertHostOptions { ModelDir = TinyCheckpoint.Dir, PlanPath = dir.File("grown.json"), NodeId = "expert-2" });
        cluster.Hosts.Add(third);
        PlacementPlan grown = grownAt0.WithEndpoints([.. before.Nodes.Select(n => n.Endpoint), $"127.0.0.1:{third.Port}"]);

        using (var stop = new CancellationTokenSource())
        {
            Task<(int, HashSet<ulong>)> steps = StepAsync(cluster.Streams, stop.Token);
            await Task.Delay(100);
            await PlanRollout.RunAsync(before, grown, [cluster.Streams]);
            await Task.Delay(200);
            stop.Cancel();
            await steps;
        }
        Assert.Equal(3, cluster.Streams.Nodes.Count);
        Assert.True(third.Experts.RowsServed > 0, "the added node serves rows");
        Assert.Equal(PlanChange.Held(grown, "expert-2"), Hosted(third));

        // Drain expert-0: its experts go elsewhere first, then it gets no rows.
        PlacementPlan drained = Rebalancer.Rebalance(grown, null, nodes: [grown.Nodes[1], grown.Nodes[2]]);
        long servedBefore;
        using (var stop = new CancellationTokenSource())
        {
            Task<(int, HashSet<ulong>)> steps = StepAsync(cluster.Streams, stop.Token);
            await Task.Delay(100);
            await PlanRollout.RunAsync(grown, drained, [cluster.Streams]);
            servedBefore = cluster.Hosts[0].Experts.RowsServed;
            await Task.Delay(300);
            stop.Cancel();
            (int count, _) = await steps;
            Assert.True(count > 3);
        }
        Assert.Equal(servedBefore, cluster.Hosts[0].Experts.RowsServed);
        Assert.Equal(2, cluster.Streams.Nodes.Count);
        Assert.DoesNotContain(cluster.Streams.Nodes, n => n.Id == "expert-0");
    }

    [Fact]
    public async Task Prepare_refuses_a_plan_without_the_node_or_older_than_its_own_and_frames_of_a_released_version_are_refused()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 0);
        ExpertHost host = cluster.Hosts[0];
        PlacementPlan without = Rebalancer.Rebalance(cluster.Plan, null, nodes: [cluster.Plan.Nodes[1]]);
        var missing = Assert.Throws<ArgumentException>(() => host.Experts.Prepare(without));
        Assert.Contains("no expert node 'expert-0'", missing.Message);

        PlacementPlan next = Rebalancer.Rebalance(cluster.Plan, RebalancerTests.Skewed(TinyCheckpoint.Config));
        host.Experts.Prepare(next);
        Assert.Equal((0, 0L), host.Experts.Prepare(next));
        Assert.Equal([1UL, 2UL], host.Experts.Versions);
        Assert.Equal(0, host.Experts.Release(1));
        Assert.True(host.Experts.Release(2) > 0);
        Assert.Equal([2UL], host.Experts.Versions);
        Assert.Null(host.Experts.Held(1));
        var old = Assert.Throws<ArgumentException>(() => host.Experts.Prepare(cluster.Plan));
        Assert.Equal("plan version 1 is older than the newest held, 2", old.Message);

        // An attention node still on version 1 is refused by name and version.
        var error = await Assert.ThrowsAsync<ExpertNodeException>(() => Task.Run(() =>
            cluster.Streams.ForLayer(TinyCheckpoint.MoeLayers[0], TensorDType.F32).Run(TinyCheckpoint.Rows(1, 1), 1, [0, 1, 2, 3, 4, 5, 6, 7], new float[8], new float[Hidden])));
        Assert.Contains("frame routed with plan version 1 but this node holds version 2", error.Message);
    }

    /// <summary>A stand-in for an attention node the rollout cannot reach: every switch fails as a refused connection does.</summary>
    private sealed class UnreachableAttentionNode(string name) : IPlanSwitch
    {
        public const string Reason = "connection refused (a stand-in)";

        public string Name => name;

        public Task SwitchAsync(PlacementPlan plan, bool revert, CancellationToken cancel) =>
            Task.FromException(new RpcException(new Status(StatusCode.Unavailable, Reason)));
    }

    /// <summary>
    /// Three expert nodes, an attention node serving PlanAgent over gRPC on their streams, the plan they serve and a
    /// rebalanced next one: what every switch-rollback test starts from.
    /// </summary>
    private sealed record SwitchRig(ExpertCluster Cluster, PlanAgentHost Attention, PlacementPlan Before, PlacementPlan Next) : IAsyncDisposable
    {
        public static async Task<SwitchRig> StartAsync()
        {
            ExpertCluster cluster = await ExpertCluster.StartAsync(3, 2);
            PlanAgentHost attention = await PlanAgentHost.StartAsync("attention-0", cluster.Streams);
            return new SwitchRig(cluster, attention, cluster.Plan, Rebalancer.Rebalance(cluster.Plan, RebalancerTests.Skewed(TinyCheckpoint.Config)));
        }

        public async ValueTask DisposeAsync()
        {
            await Attention.DisposeAsync();
            await Cluster.DisposeAsync();
        }
    }

    /// <summary>
    /// A real attention node behind a stand-in for a slow call: its switch takes over, but the caller hears only that the
    /// call ran out of time; a revert goes through.
    /// </summary>
    private sealed class SwitchedAfterTimeoutAttentionNode(IPlanSwitch node) : IPlanSwitch
    {
        public const string Reason = "deadline exceeded (a stand-in: the node switched after its caller gave up)";

        public string Name => node.Name;

        public async Task SwitchAsync(PlacementPlan plan, bool revert, CancellationToken cancel)
        {
            await node.SwitchAsync(plan, revert, cancel);
            if (!revert) throw new RpcException(new Status(StatusCode.DeadlineExceeded, Reason));
        }
    }

    /// <summary>A stand-in for an attention node that switches and is gone before the rollback asks it to go back.</summary>
    private sealed class GoneAfterSwitchAttentionNode(string name) : IPlanSwitch
    {
        public string Name => name;

        public Task SwitchAsync(PlacementPlan plan, bool revert, CancellationToken cancel) => revert
            ? Task.FromException(new RpcException(new Status(StatusCode.Unavailable, UnreachableAttentionNode.Reason)))
            : Task.CompletedTask;
    }
}
