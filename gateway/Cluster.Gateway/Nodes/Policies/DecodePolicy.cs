using Cluster.Protos.V1;
using Microsoft.Extensions.Options;

namespace Cluster.Gateway.Nodes.Policies;

/// <summary>
/// Decode nodes hold a split request's whole context while it generates: one with room for it, most free cache
/// blocks first, then fewest requests.
/// </summary>
public sealed class DecodePolicy(IOptions<AdmissionOptions> options) : RankingPolicy
{
    public override NodeRole Role => NodeRole.Decode;

    protected override bool CanTake(AttentionNode node, AdmissionRequest request) => node.HasRoomFor(request, options.Value.MaxInFlightPerNode);

    protected override (long, long) Cost(AttentionNode node, AdmissionRequest request) => (-node.FreeBlocks, node.InFlight);
}
