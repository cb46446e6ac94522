using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Cluster.ExpertNode.Control;

/// <summary>
/// cluster.v1.Control, served by the gateway: reads the plan from the attention nodes (they must agree), the rows
/// and slots from the expert nodes, and changes the plan while serving (a rebalance from the tokens each expert got
/// since the last plan, a new replica or redundant count, a node added or drained) through
/// <see cref="PlanRollout"/>. One change at a time. Its calls to the nodes carry <paramref name="token"/>, the
/// cluster's credential, when the cluster has one, over channels it keeps for its lifetime.
/// </summary>
public sealed class ControlService(Func<IReadOnlyList<string>> attentionNodes, ILogger<ControlService> logger, ClusterToken? token = null)
    : Protos.V1.Control.ControlBase, IDisposable
{
    private readonly PeerChannels _channels = new(new GrpcClientOptions { ClusterToken = token });
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);
    private readonly SemaphoreSlim _changing = new(1, 1);
    // What had been counted when the plan in use took over, to measure "since the last plan".
    private Baseline? _baseline;

    private sealed record Baseline(ulong Version, long[] Tokens, Dictionary<string, long> Rows);

    private sealed record ClusterView(PlacementPlan Plan, long[] Tokens, IReadOnlyList<(string Endpoint, PlanAgent.PlanAgentClient Client)> Agents);

    public override async Task<ExpertsStatus> GetExperts(GetExpertsRequest request, ServerCallContext context)
    {
        ClusterView view = await ReadAsync(context.CancellationToken).ConfigureAwait(false);
        PlacementPlan plan = view.Plan;
        var status = new ExpertsStatus
        {
            PlanVersion = plan.Version,
            Replicas = (uint)Rebalancer.MinimumReplicas(plan),
            RedundantExperts = (uint)(plan.Layers[0].ReplicaCount - plan.RoutedExperts * Rebalancer.MinimumReplicas(plan)),
            PlanJson = plan.ToJson(),
        };
        Baseline? baseline = Volatile.Read(ref _baseline) is { } b && b.Version == plan.Version ? b : null;
        var infos = await Task.WhenAll(plan.Nodes.Select(n => InfoAsync(n, context.CancellationToken))).ConfigureAwait(false);
        for (int i = 0; i < plan.Nodes.Count; i++)
        {
            ExpertNodeAddress node = plan.Nodes[i];
            (ExpertNodeInfo? info, string? problem) = infos[i];
            long rows = info is null ? 0 : (long)info.RowsServed;
            long since = rows - (baseline?.Rows.GetValueOrDefault(node.Id) ?? 0);
            status.Nodes.Add(new ExpertNodeStatus
            {
                NodeId = node.Id,
                Endpoint = node.Endpoint,
                State = problem is null ? "serving" : "unreachable: " + problem,
                Slots = (uint)(info?.Slots.Count ?? 0),
                RowsServed = (ulong)rows,
                RowsSincePlan = (ulong)Math.Max(0, since),
                PlanVersion = info?.PlanVersion ?? 0,
                Restarts = info?.Restarts ?? 0,
            });
        }
        double mean = status.Nodes.Average(n => (double)n.RowsSincePlan);
        status.MaxOverMeanRows = mean > 0 ? status.Nodes.Max(n => (double)n.RowsSincePlan) / mean : 0;
        return status;
    }

    public override Task<PlanChangeReply> Rebalance(RebalanceRequest request, ServerCallContext context) =>
        ChangeAsync(context.CancellationToken, (plan, load) => Rebalancer.Rebalance(plan, load))!;

    /// <summary>
    /// The automatic rebalance (<see cref="AutoRebalancer"/>): from the tokens each expert got since the plan in use
    /// took over, rebalances when at least <paramref name="minimumTokens"/> were counted, the plan's expected max/mean
    /// rows per expert node is at least <paramref name="threshold"/>, and a new plan would lower it by
    /// <see cref="MinimumGain"/> or more; null when it leaves the plan as it is (or another change is running).
    /// </summary>
    public async Task<PlanChangeReply?> RebalanceIfSkewedAsync(double threshold, long minimumTokens, CancellationToken cancel)
    {
        try
        {
            return await ChangeAsync(cancel, (plan, load) =>
            {
                double counted = 0;
                foreach (int layer in load.Layers) foreach (double t in load.Tokens(layer)) counted += t;
                if (counted < minimumTokens) return null;
                double now = ExpectedLoad.Of(plan, load).MaxOverMean;
                if (now < threshold) return null;
                PlacementPlan next = Rebalancer.Rebalance(plan, load);
                return ExpectedLoad.Of(next, load).MaxOverMean <= now - MinimumGain ? next : null;
            }).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Aborted) { return null; }
    }

    /// <summary>The least fall in expected max/mean rows per node that is worth moving experts for.</summary>
    public const double MinimumGain = 0.05;

    public override Task<PlanChangeReply> Scale(ScaleRequest request, ServerCallContext context) =>
        ChangeAsync(context.CancellationToken, (plan, load) => Rebalancer.Rebalance(plan, load,
            replicas: request.Replicas == 0 ? null : (int)request.Replicas,
            redundantExperts: request.HasRedundantExperts ? (int)request.RedundantExperts : null))!;

    public override Task<PlanChangeReply> AddNode(AddNodeRequest request, ServerCallContext context)
    {
        if (request.NodeId.Length == 0) throw Invalid("node_id is empty");
        try { ExpertNodeAddress.ValidateEndpoint(request.Endpoint, "endpoint"); }
        catch (FormatException e) { throw Invalid(e.Message); }
        return ChangeAsync(context.CancellationToken, (plan, load) =>
        {
            if (plan.Nodes.Any(n => n.Id == request.NodeId)) throw new ArgumentException($"expert node '{request.NodeId}' is already in plan version {plan.Version}");
            return Rebalancer.Rebalance(plan, load, nodes: [.. plan.Nodes, new ExpertNodeAddress(request.NodeId, request.Endpoint)]);
        })!;
    }

    public override Task<PlanChangeReply> DrainNode(DrainNodeRequest request, ServerCallContext context) =>
        ChangeAsync(context.CancellationToken, (plan, load) =>
        {
            plan.NodeIndex(request.NodeId);
            if (plan.Nodes.Count == 1) throw new ArgumentException($"expert node '{request.NodeId}' is the only one: nothing could take its experts");
            return Rebalancer.Rebalance(plan, load, nodes: [.. plan.Nodes.Where(n => n.Id != request.NodeId)]);
        })!;

    /// <summary>Rolls out the plan <paramref name="next"/> makes of the one in use and the load since it took over; nothing when it makes none.</summary>
    private async Task<PlanChangeReply?> ChangeAsync(CancellationToken cancel, Func<PlacementPlan, ExpertLoad, PlacementPlan?> next)
    {
        if (!await _changing.WaitAsync(0, cancel).ConfigureAwait(false))
            throw new RpcException(new Status(StatusCode.Aborted, "another plan change is in progress"));
        try
        {
            ClusterView view = await ReadAsync(cancel).ConfigureAwait(false);
            Baseline? baseline = Volatile.Read(ref _baseline) is { } b && b.Version == view.Plan.Version ? b : null;
            ExpertLoad load = LoadSince(view, baseline);
            PlacementPlan? plan;
            try { plan = next(view.Plan, load); }
            catch (ArgumentException e) { throw new RpcException(new Status(StatusCode.FailedPrecondition, e.Message)); }
            if (plan is null) return null;
            RolloutReport report;
            try
            {
                report = await PlanRollout.RunAsync(view.Plan, plan,
                    [.. view.Agents.Select(a => (IPlanSwitch)new RemotePlanSwitch(a.Endpoint, a.Client))], _channels, cancel).ConfigureAwait(false);
            }
            catch (InvalidOperationException e) { throw new RpcException(new Status(StatusCode.Unavailable, e.Message)); }
            // The new plan's "since": counts as they are now.
            ClusterView after = await ReadAsync(cancel).ConfigureAwait(false);
            var infos = await Task.WhenAll(plan.Nodes.Select(n => InfoAsync(n, cancel))).ConfigureAwait(false);
            var rows = new Dictionary<string, long>(StringComparer.Ordinal);
            for (int i = 0; i < plan.Nodes.Count; i++) rows[plan.Nodes[i].Id] = (long)(infos[i].Info?.RowsServed ?? 0);
            Volatile.Write(ref _baseline, new Baseline(plan.Version, after.Tokens, rows));
            logger.LogInformation("plan version {From} -> {To}: {Loaded} slots loaded ({Bytes:N0} bytes), {Dropped} dropped, on {Attention} attention nodes",
                report.FromVersion, report.ToVersion, report.LoadedSlots, report.LoadedBytes, report.DroppedSlots, view.Agents.Count);
            return new PlanChangeReply
            {
                FromVersion = report.FromVersion,
                ToVersion = report.ToVersion,
                LoadedSlots = (uint)report.LoadedSlots,
                LoadedBytes = (ulong)report.LoadedBytes,
                DroppedSlots = (uint)report.DroppedSlots,
                PrepareSeconds = report.Prepare.TotalSeconds,
                SwitchSeconds = report.Switch.TotalSeconds,
                ExpectedMaxOverMean = ExpectedLoad.Of(plan, load).MaxOverMean,
                AttentionNodes = (uint)view.Agents.Count,
            };
        }
        finally { _changing.Release(); }
    }

    /// <summary>Tokens per expert since the plan took over (since the nodes started when that is unknown).</summary>
    private static ExpertLoad LoadSince(ClusterView view, Baseline? baseline)
    {
        var tokens = new Dictionary<int, double[]>();
        int experts = view.Plan.RoutedExperts;
        for (int l = 0; l < view.Plan.Layers.Count; l++)
        {
            var t = new double[experts];
            for (int e = 0; e < experts; e++)
            {
                int i = l * experts + e;
                t[e] = view.Tokens[i] - (baseline is null ? 0 : baseline.Tokens[i]);
            }
            tokens[view.Plan.Layers[l].Layer] = t;
        }
        return new ExpertLoad(tokens);
    }

    /// <summary>Every attention node's plan (they must agree) and the sum of their per-expert token counts.</summary>
    private async Task<ClusterView> ReadAsync(CancellationToken cancel)
    {
        IReadOnlyList<string> endpoints = attentionNodes();
        if (endpoints.Count == 0) throw new RpcException(new Status(StatusCode.FailedPrecondition, "the gateway knows no attention node"));
        var agents = endpoints.Select(e => (Endpoint: e, Client: new PlanAgent.PlanAgentClient(_channels.For(e).Invoker))).ToArray();
        AgentPlan[] plans;
        try
        {
            plans = await Task.WhenAll(agents.Select(a => a.Client.GetPlanAsync(new GetPlanRequest(), deadline: DateTime.UtcNow + AskTimeout, cancellationToken: cancel).ResponseAsync)).ConfigureAwait(false);
        }
        catch (RpcException e) { throw new RpcException(new Status(e.StatusCode == StatusCode.FailedPrecondition ? StatusCode.FailedPrecondition : StatusCode.Unavailable, $"reading the plan of the attention nodes: {e.Status.Detail}")); }
        PlacementPlan plan = PlacementPlan.Parse(plans[0].PlanJson, $"attention node {plans[0].NodeId}'s plan");
        var versions = plans.Select(p => (p.NodeId, PlacementPlan.Parse(p.PlanJson, $"attention node {p.NodeId}'s plan").Version)).ToArray();
        if (versions.Any(v => v.Version != plan.Version))
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"the attention nodes route by different plans ({string.Join(", ", versions.Select(v => $"{v.NodeId}: {v.Version}"))}); an earlier change did not finish"));
        var tokens = new long[plan.Layers.Count * plan.RoutedExperts];
        foreach (AgentPlan p in plans)
            for (int i = 0; i < Math.Min(tokens.Length, p.ExpertTokens.Count); i++) tokens[i] += (long)p.ExpertTokens[i];
        return new ClusterView(plan, tokens, agents);
    }

    private async Task<(ExpertNodeInfo? Info, string? Problem)> InfoAsync(ExpertNodeAddress node, CancellationToken cancel)
    {
        try
        {
            var client = new Protos.V1.ExpertService.ExpertServiceClient(_channels.For(node.Endpoint).Invoker);
            return (await client.GetInfoAsync(new GetExpertInfoRequest(), deadline: DateTime.UtcNow + AskTimeout, cancellationToken: cancel).ResponseAsync.ConfigureAwait(false), null);
        }
        catch (RpcException e) { return (null, e.Status.Detail); }
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    public void Dispose() => _channels.Dispose();
}
