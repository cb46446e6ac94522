using System.Diagnostics;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.ExpertNode.Control;

/// <summary>What a rollout did and how long each phase took.</summary>
public sealed record RolloutReport(ulong FromVersion, ulong ToVersion, int LoadedSlots, long LoadedBytes, int DroppedSlots,
    TimeSpan Prepare, TimeSpan Switch, TimeSpan Release);

/// <summary>
/// Moves a serving cluster from one plan to the next without stopping it, in three phases:
/// <list type="number">
/// <item>prepare: every expert node of the next plan, one after another, loads the slots it gains (in the
/// background while it serves) and then serves frames of both versions;</item>
/// <item>switch: every attention node routes by the next plan from its next step on;</item>
/// <item>release: once all have switched, the expert nodes forget the old version and drop the slots only it had.</item>
/// </list>
/// A failure in the first phase is rolled back: every attention node is still on the old plan, and the expert nodes
/// that prepared forget the new version (its slots dropped, their plan files back to the old version). So is a
/// failure in the second: the attention nodes that switched go back to the old plan, which the expert nodes still
/// serve (nothing was released), and write it back to their plan files; once every one is back, the expert nodes
/// forget the new version as after a failed prepare. A node whose switch failed is taken as still on the old plan (a
/// switch given up before it took over is withdrawn) and is told to go back as well, in case it took over late. When a node cannot be switched back, nothing is forgotten: the
/// expert nodes keep serving both versions, so the nodes on either plan keep working, and the error says so.
/// </summary>
public static class PlanRollout
{
    // As long as a switch through a PlanAgent may take (RemotePlanSwitch's deadline).
    private static readonly TimeSpan RevertTimeout = TimeSpan.FromMinutes(2);

    /// <param name="channels">The caller's channels to the expert nodes, kept across rollouts (with the cluster's
    /// credential when it has one); null opens channels for this rollout alone.</param>
    public static async Task<RolloutReport> RunAsync(PlacementPlan current, PlacementPlan next, IReadOnlyList<IPlanSwitch> attention,
        PeerChannels? channels = null, CancellationToken cancel = default)
    {
        if (next.Version <= current.Version) throw new ArgumentException($"the next plan's version {next.Version} must be above the current {current.Version}");
        PeerChannels? own = channels is null ? new PeerChannels(new GrpcClientOptions()) : null;
        channels ??= own!;
        try
        {
            var clock = Stopwatch.StartNew();
            string json = next.ToJson();
            // One node after another: the nodes of a small machine share its cores with the steps, and four prepares
            // at once put all their work into one step (bench rebalance: 8.7x the median step at once, 5.1x in turn).
            var prepared = new PreparePlanReply[next.Nodes.Count];
            for (int i = 0; i < prepared.Length; i++)
            {
                ExpertNodeAddress n = next.Nodes[i];
                try { prepared[i] = await Call(n, () => Client(channels, n).PrepareAsync(new PreparePlanRequest { PlanJson = json }, cancellationToken: cancel).ResponseAsync).ConfigureAwait(false); }
                catch (Exception e) when (e is InvalidOperationException or OperationCanceledException)
                {
                    int abandoned = await AbandonAsync(next, next.Nodes.Take(i + 1), channels).ConfigureAwait(false);
                    throw new InvalidOperationException($"{e.Message}; plan version {next.Version} rolled back on {abandoned} of {i + 1} expert nodes, every attention node stays on {current.Version}", e);
                }
            }
            TimeSpan prepare = clock.Elapsed;

            clock.Restart();
            await SwitchAsync(current, next, attention, channels, cancel).ConfigureAwait(false);
            TimeSpan @switch = clock.Elapsed;

            clock.Restart();
            ReleasePlanReply[] released = await Task.WhenAll(next.Nodes.Select(n => Call(n, () =>
                Client(channels, n).ReleaseAsync(new ReleasePlanRequest { KeepFromVersion = next.Version }, cancellationToken: cancel).ResponseAsync))).ConfigureAwait(false);
            return new RolloutReport(current.Version, next.Version, prepared.Sum(p => (int)p.LoadedSlots), prepared.Sum(p => (long)p.LoadedBytes),
                released.Sum(r => (int)r.DroppedSlots), prepare, @switch, clock.Elapsed);
        }
        finally { own?.Dispose(); }
    }

    /// <summary>
    /// The switch phase, every attention node at once; when any fails, the rollback of the others
    /// (<see cref="RevertAsync"/>), and an error that names each failed node, its reason and what the rollback did.
    /// </summary>
    private static async Task SwitchAsync(PlacementPlan current, PlacementPlan next, IReadOnlyList<IPlanSwitch> attention, PeerChannels channels,
        CancellationToken cancel)
    {
        Exception?[] failed = await EachAsync(attention, a => a.SwitchAsync(next, revert: false, cancel)).ConfigureAwait(false);
        var switched = new List<IPlanSwitch>();
        var unswitched = new List<IPlanSwitch>();
        var reasons = new List<string>();
        Exception? first = null;
        for (int i = 0; i < attention.Count; i++)
        {
            if (failed[i] is not { } e)
            {
                switched.Add(attention[i]);
                continue;
            }
            unswitched.Add(attention[i]);
            reasons.Add($"attention node {attention[i].Name} did not switch to plan version {next.Version}: {Detail(e)}");
            first ??= e;
        }
        if (first is null) return;
        string rollback = await RevertAsync(current, next, switched, unswitched, channels).ConfigureAwait(false);
        throw new InvalidOperationException($"{string.Join("; ", reasons)}; rolled back: {rollback}", first);
    }

    /// <summary>
    /// The rollback of a failed switch: the nodes that switched go back to <paramref name="current"/>; once all have,
    /// none routes by <paramref name="next"/> and every expert node abandons it. Says what it did. The nodes whose
    /// switch failed are told to go back too: a switch whose call timed out here may have taken over there at a step
    /// boundary just after. One of them that does not answer counts, as before, as still on the old plan.
    /// </summary>
    private static async Task<string> RevertAsync(PlacementPlan current, PlacementPlan next, List<IPlanSwitch> switched, List<IPlanSwitch> unswitched,
        PeerChannels channels)
    {
        // Not the rollout's token: a cancelled rollout is rolled back too.
        using var limit = new CancellationTokenSource(RevertTimeout);
        Exception?[] failed = await EachAsync([.. switched, .. unswitched], a => a.SwitchAsync(current, revert: true, limit.Token)).ConfigureAwait(false);
        var stuck = new List<string>();
        for (int i = 0; i < switched.Count; i++)
            if (failed[i] is { } e) stuck.Add($"attention node {switched[i].Name}: {Detail(e)}");
        int confirmed = 0;
        for (int i = switched.Count; i < failed.Length; i++)
            if (failed[i] is null) confirmed++;
        string back = $"{AttentionNodes(switched.Count - stuck.Count + confirmed)} back on version {current.Version}";
        if (stuck.Count > 0)
        {
            return $"{back}, {AttentionNodes(stuck.Count)} still on version {next.Version} ({string.Join("; ", stuck)}), "
                + $"so every expert node keeps serving versions {current.Version} and {next.Version}";
        }
        int abandoned = await AbandonAsync(next, next.Nodes, channels).ConfigureAwait(false);
        return $"{back}, version {next.Version} abandoned on {abandoned} of {next.Nodes.Count} expert nodes";
    }

    private static string AttentionNodes(int count) => count == 1 ? "1 attention node" : $"{count} attention nodes";

    /// <summary>Calls every node at once; each node's failure, null where the call succeeded.</summary>
    private static async Task<Exception?[]> EachAsync(IReadOnlyList<IPlanSwitch> nodes, Func<IPlanSwitch, Task> call)
    {
        var outcomes = new Task<Exception?>[nodes.Count];
        for (int i = 0; i < outcomes.Length; i++)
        {
            IPlanSwitch node = nodes[i];
            outcomes[i] = FailureOf(() => call(node));
        }
        return await Task.WhenAll(outcomes).ConfigureAwait(false);
    }

    private static async Task<Exception?> FailureOf(Func<Task> call)
    {
        try
        {
            await call().ConfigureAwait(false);
            return null;
        }
        catch (Exception e) when (e is RpcException or ArgumentException or InvalidDataException or ExpertNode.Client.ExpertNodeException or OperationCanceledException)
        {
            return e;
        }
    }

    /// <summary>
    /// The rollback of a failed prepare or switch: asks each node that may hold <paramref name="next"/> to forget it
    /// (and to put its plan file back), as far as they answer; returns how many did.
    /// </summary>
    private static async Task<int> AbandonAsync(PlacementPlan next, IEnumerable<ExpertNodeAddress> nodes, PeerChannels channels)
    {
        int done = 0;
        foreach (ExpertNodeAddress n in nodes)
        {
            try
            {
                await Client(channels, n).ReleaseAsync(new ReleasePlanRequest { AbandonVersion = next.Version }, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync.ConfigureAwait(false);
                done++;
            }
            catch (RpcException) { }
        }
        return done;
    }

    private static Protos.V1.ExpertService.ExpertServiceClient Client(PeerChannels channels, ExpertNodeAddress node) =>
        new(channels.For(node.Endpoint).Invoker);

    private static async Task<T> Call<T>(ExpertNodeAddress node, Func<Task<T>> call)
    {
        try { return await call().ConfigureAwait(false); }
        catch (RpcException e) { throw new InvalidOperationException($"expert node {node.Id} ({node.Endpoint}): {e.Status.Detail}", e); }
    }

    // The rollout's error is one line, whatever a node's reason holds.
    private static string Detail(Exception e) => (e is RpcException r ? r.Status.Detail : e.Message).ReplaceLineEndings(" ");
}
