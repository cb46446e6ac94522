using Cluster.Protos.V1;

namespace Cluster.Gateway.Nodes.Policies;

/// <summary>
/// Prefill nodes hold a prompt only while they run it: any whose cache could hold the prompt, least prefill work
/// first (prompt tokens waiting there plus those of this prompt it is not expected to hold, so a shared prefix goes
/// back to the node that ran it).
/// </summary>
public sealed class PrefillPolicy : RankingPolicy
{
    public override NodeRole Role => NodeRole.Prefill;

    protected override bool CanTake(AttentionNode node, AdmissionRequest request) => node.State.CanEverHold(request.Prompt.Count);

    protected override (long, long) Cost(AttentionNode node, AdmissionRequest request) => (node.PrefillCost(request), 0);
}
