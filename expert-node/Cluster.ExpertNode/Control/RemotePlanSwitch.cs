using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;

namespace Cluster.ExpertNode.Control;

/// <summary>An attention node reached through its PlanAgent service.</summary>
internal sealed class RemotePlanSwitch(string endpoint, PlanAgent.PlanAgentClient client) : IPlanSwitch
{
    public string Name => endpoint;

    public Task SwitchAsync(PlacementPlan plan, bool revert, CancellationToken cancel) =>
        client.SwitchPlanAsync(new SwitchPlanRequest { PlanJson = plan.ToJson(), Revert = revert }, deadline: DateTime.UtcNow.AddMinutes(2), cancellationToken: cancel).ResponseAsync;
}
