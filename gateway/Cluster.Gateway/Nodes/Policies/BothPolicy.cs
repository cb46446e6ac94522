using Cluster.Protos.V1;
using Microsoft.Extensions.Options;

namespace Cluster.Gateway.Nodes.Policies;

/// <summary>
/// Nodes of role both run the prompt and the generation: one with room for the whole context, least prefill work
/// first (prompt tokens waiting there plus those of this prompt it is not expected to hold), then fewest requests.
/// </summary>
public sealed class BothPolicy(IOptions<AdmissionOptions> options) : RankingPolicy
{
    public override NodeRole Role => NodeRole.Both;

    protected override bool CanTake(AttentionNode node, AdmissionRequest request) => node.HasRoomFor(request, options.Value.MaxInFlightPerNode);

    protected override (long, long) Cost(AttentionNode node, AdmissionRequest request) => (node.PrefillCost(request), node.InFlight);
}
