using Cluster.ExpertNode.Placement;

namespace Cluster.ExpertNode.Control;

/// <summary>An attention node as a plan rollout sees it: it can be told to route by a newer plan, and back.</summary>
public interface IPlanSwitch
{
    /// <summary>The node's name in errors.</summary>
    string Name { get; }

    /// <summary>
    /// Routes by <paramref name="plan"/> from its next step on; returns once no step uses another plan. A plan older
    /// than the one in use is refused unless <paramref name="revert"/>: a rollout going back to the plan before it
    /// after another node failed to switch, which its expert nodes still serve.
    /// </summary>
    Task SwitchAsync(PlacementPlan plan, bool revert, CancellationToken cancel);
}
