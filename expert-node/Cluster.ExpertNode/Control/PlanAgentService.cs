using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Cluster.ExpertNode.Control;

/// <summary>
/// cluster.v1.PlanAgent on an attention node: the plan its steps route by, the tokens each expert got from it, and
/// the switch to a newer plan (<see cref="ExpertStreams.SwitchAsync"/>), or back to an older one when a rollout
/// reverts. The plan switched to is written to the node's plan file, so that a restarted node starts from it.
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
        try { await streams.SwitchAsync(plan, NodeWait, request.Revert, context.CancellationToken).ConfigureAwait(false); }
        catch (Exception e) when (e is ArgumentException or InvalidDataException)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"attention node {nodeId}: {e.Message}"));
        }
        catch (ExpertNodeException e) { throw new RpcException(new Status(StatusCode.Unavailable, $"attention node {nodeId}: {e.Message}")); }
        if (planPath is not null) Write(plan, planPath, request.Revert);
        if (request.Revert) logger.LogWarning("{Node}: back on plan version {Version}, the rollout of a newer one failed", nodeId, plan.Version);
        else logger.LogInformation("{Node}: routing by plan version {Version}", nodeId, plan.Version);
        return new SwitchPlanReply { Version = streams.Plan.Version };
    }

    /// <summary>
    /// The plan file after a switch: the newer plan (unless the file has one at least as new already), or the older
    /// one a revert went back to. A file that cannot be written is logged, not failed: the switch itself is done, and a
    /// rollout that took it as failed would abandon the version this node routes by.
    /// </summary>
    private void Write(PlacementPlan plan, string path, bool revert)
    {
        try
        {
            if (revert) plan.Save(path);
            else plan.SaveIfNewer(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("{Node}: plan file {Path} not set to version {Version}, a restart would start from the plan it holds: {Reason}",
                nodeId, path, plan.Version, e.Message);
        }
    }
}
