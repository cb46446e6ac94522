using Cluster.Transport.Discovery;

namespace Cluster.Gateway;

/// <summary>
/// Where the gateway finds its attention nodes, one source per pool: nodes of role both, prefill nodes, decode
/// nodes. A pool without a source has no nodes.
/// </summary>
public sealed record GatewayDiscovery
{
    public IPeerDiscovery? Attention { get; init; }
    public IPeerDiscovery? Prefill { get; init; }
    public IPeerDiscovery? Decode { get; init; }
}
