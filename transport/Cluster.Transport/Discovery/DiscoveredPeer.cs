namespace Cluster.Transport.Discovery;

/// <summary>
/// One peer a discovery backend reports: a stable id (the registered service id, or the address for DNS) and the
/// "host:port" endpoint to dial, as <see cref="PeerAddress"/> reads it.
/// </summary>
public sealed record DiscoveredPeer(string Id, string Endpoint);
