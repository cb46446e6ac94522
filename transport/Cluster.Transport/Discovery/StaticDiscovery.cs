using System.Runtime.CompilerServices;

namespace Cluster.Transport.Discovery;

/// <summary>A fixed list of endpoints (command-line node lists, the plan file's): yields it once and never changes.</summary>
public sealed class StaticDiscovery(IReadOnlyList<string> endpoints) : IPeerDiscovery
{
    private readonly DiscoveredPeer[] _peers = [.. endpoints.Select(e => new DiscoveredPeer(e, e))];

    public string Source => "static list";

    public async IAsyncEnumerable<IReadOnlyList<DiscoveredPeer>> WatchAsync([EnumeratorCancellation] CancellationToken ct)
    {
        yield return _peers;
        // The set never changes: the watch ends only when its follower stops.
        try { await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
    }
}
