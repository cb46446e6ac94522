using Cluster.Transport;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// One attention node as the gateway sees it: a channel, the requests this gateway has in flight there (running or
/// queued on the node), and whether it recently refused a connection.
/// </summary>
public sealed class AttentionNode : IDisposable
{
    private static readonly TimeSpan s_downFor = TimeSpan.FromSeconds(2);
    private int _inFlight;
    private long _downUntil;

    public AttentionNode(string endpoint)
    {
        Endpoint = endpoint;
        Address = ParseAddress(endpoint);
        // Streams are never retried by the channel; the gateway itself moves a refused request to another node.
        Channel = GrpcChannel.ForAddress(Address, new GrpcChannelOptions { Resilience = null, ConnectTimeout = TimeSpan.FromSeconds(2) });
    }

    public string Endpoint { get; }
    public Uri Address { get; }
    public GrpcChannel Channel { get; }
    public int InFlight => Volatile.Read(ref _inFlight);
    /// <summary>Refused a connection in the last two seconds: tried only after the others.</summary>
    public bool RecentlyDown => Environment.TickCount64 < Volatile.Read(ref _downUntil);

    /// <summary>"host:port" (cleartext) or an http:// or https:// address.</summary>
    public static Uri ParseAddress(string endpoint)
    {
        string text = endpoint.Contains("://", StringComparison.Ordinal) ? endpoint : "http://" + endpoint;
        if (!Uri.TryCreate(text, UriKind.Absolute, out Uri? uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            || uri.IsDefaultPort || uri.AbsolutePath != "/")
            throw new ArgumentException($"attention node '{endpoint}' is not host:port");
        return uri;
    }

    /// <summary>Takes one of the node's <paramref name="limit"/> places, or says the node is full.</summary>
    public bool TryReserve(int limit)
    {
        while (true)
        {
            int current = Volatile.Read(ref _inFlight);
            if (current >= limit) return false;
            if (Interlocked.CompareExchange(ref _inFlight, current + 1, current) == current) return true;
        }
    }

    public void Release() => Interlocked.Decrement(ref _inFlight);

    public void MarkDown() => Volatile.Write(ref _downUntil, Environment.TickCount64 + (long)s_downFor.TotalMilliseconds);

    public void MarkUp() => Volatile.Write(ref _downUntil, 0);

    public void Dispose() => Channel.Dispose();
}
