using Cluster.ExpertNode.Placement;

namespace Cluster.ExpertNode.Control;

/// <summary>An attention node as a plan rollout sees it: it can be told to route by a newer plan.</summary>
public interface IPlanSwitch
{
    /// <summary>The node's name in errors.</summary>
    string Name { get; }

    /// <summary>Routes by <paramref name="next"/> from its next step on; returns once no step uses an older plan.</summary>
    Task SwitchAsync(PlacementPlan next, CancellationToken cancel);
}
