namespace Cluster.Transport.Discovery;

/// <summary>
/// Follows one set of peers (one service): yields the whole set first and again each time it changes, until the
/// token fires. A backend that cannot be asked keeps its last set rather than report peers gone it has not seen go;
/// before its first answer that set is empty.
/// </summary>
public interface IPeerDiscovery
{
    /// <summary>What is followed, for logs and errors ("consul service cluster-attention").</summary>
    string Source { get; }

    IAsyncEnumerable<IReadOnlyList<DiscoveredPeer>> WatchAsync(CancellationToken ct);
}
