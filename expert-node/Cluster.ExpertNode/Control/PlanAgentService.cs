using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Cluster.ExpertNode.Control;

/// <summary>
/// cluster.v1.PlanAgent on an attention node: the plan its steps route by, the tokens each expert got from it, and
/// the switch to a newer plan (<see cref="ExpertStreams.SwitchAsync"/>). The switched plan is written to the node's
/// plan file, so that a restarted node starts from it.
/// </summary>
public sealed class PlanAgentService(string nodeId, string? planPath, ILogger<PlanAgentService> logger) : PlanAgent.PlanAgentBase
{
    private static readonly TimeSpan NodeWait = TimeSpan.FromSeconds(30);
    private (ExpertStreams Streams, long[]?[] Tokens)? _attached;

    /// <summary>Once the model is loaded: its expert streams and per-layer token counters (null for dense layers).</summary>
    public void Attach(ExpertStreams streams, long[]?[] tokens) => _attached = (streams, tokens);

    private (ExpertStreams Streams, long[]?[] Tokens) Attached() => _attached
        ?? throw new RpcException(new Status(StatusCode.FailedPrecondition, $"attention node {nodeId} has no remote experts (it is loading, or runs its experts itself)"));

    public override Task<AgentPlan> GetPlan(GetPlanRequest request, ServerCallContext context)
    {
        (ExpertStreams streams, long[]?[] tokens) = Attached();
        PlacementPlan plan = streams.Plan;
        var reply = new AgentPlan { NodeId = nodeId, PlanJson = plan.ToJson() };
        foreach (LayerPlacement layer in plan.Layers)
        {
            long[] counts = tokens[layer.Layer] ?? new long[plan.RoutedExperts];
            for (int e = 0; e < counts.Length; e++) reply.ExpertTokens.Add((ulong)Interlocked.Read(ref counts[e]));
        }
        return Task.FromResult(reply);
    }

    public override async Task<SwitchPlanReply> SwitchPlan(SwitchPlanRequest request, ServerCallContext context)
    {
        (ExpertStreams streams, _) = Attached();
        PlacementPlan plan;
        try { plan = PlacementPlan.Parse(request.PlanJson, "plan_json"); }
        catch (InvalidDataException e) { throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message)); }
        try { await streams.SwitchAsync(plan, NodeWait, context.CancellationToken).ConfigureAwait(false); }
        catch (Exception e) when (e is ArgumentException or InvalidDataException)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"attention node {nodeId}: {e.Message}"));
        }
        catch (ExpertNodeException e) { throw new RpcException(new Status(StatusCode.Unavailable, $"attention node {nodeId}: {e.Message}")); }
        if (planPath is not null) plan.SaveIfNewer(planPath);
        logger.LogInformation("{Node}: routing by plan version {Version}", nodeId, plan.Version);
        return new SwitchPlanReply { Version = streams.Plan.Version };
    }
}
