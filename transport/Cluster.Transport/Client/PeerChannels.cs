using System.Collections.Concurrent;

namespace Cluster.Transport;

/// <summary>
/// Channels to peers by endpoint ("host:port" or an address), each opened on first use and kept until disposed. For
/// a caller that talks to the same nodes again and again, such as the gateway's Control service and every plan
/// change it rolls out: a fresh channel per operation pays a connect, an HTTP/2 handshake and a cold first call
/// each time, on the cores the serving nodes are using (bench rebalance saw 10-15 ms of it per node).
/// </summary>
public sealed class PeerChannels(GrpcClientOptions options) : IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<PeerChannel>> _open = new(StringComparer.Ordinal);

    public PeerChannel For(string endpoint) =>
        _open.GetOrAdd(endpoint, e => new Lazy<PeerChannel>(() => PeerChannel.ForAddress(PeerAddress.Parse(e, e), options))).Value;

    public void Dispose()
    {
        foreach (Lazy<PeerChannel> c in _open.Values)
            if (c.IsValueCreated) c.Value.Dispose();
        _open.Clear();
    }
}
