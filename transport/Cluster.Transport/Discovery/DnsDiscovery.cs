using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.Transport.Discovery;

/// <summary>
/// The peers behind a DNS name, re-resolved every interval: on Kubernetes a headless Service's name resolves to the
/// addresses of its ready pods, so pods that start or stop show up in its records. Each address is a peer at the
/// given port. A name that does not exist (NXDOMAIN: a headless Service without ready pods) is an empty set; any
/// other failure keeps the last set.
/// </summary>
public sealed class DnsDiscovery : IPeerDiscovery
{
    private readonly string _host;
    private readonly int _port;
    private readonly TimeSpan _interval;
    private readonly IHostResolver _resolver;
    private readonly ILogger _logger;

    /// <param name="name">"host:port": the DNS name and the port every address serves on.</param>
    public DnsDiscovery(string name, TimeSpan interval, IHostResolver? resolver = null, ILogger? logger = null)
    {
        Uri address = PeerAddress.Parse(name, "DNS discovery");
        if (address.Scheme != Uri.UriSchemeHttp) throw new FormatException($"DNS discovery: '{name}' must be host:port");
        if (interval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(interval), interval, "the re-resolution interval must be positive");
        _host = address.IdnHost;
        _port = address.Port;
        _interval = interval;
        _resolver = resolver ?? SystemHostResolver.Instance;
        _logger = logger ?? NullLogger.Instance;
        Source = $"DNS name {name}";
    }

    public string Source { get; }

    public async IAsyncEnumerable<IReadOnlyList<DiscoveredPeer>> WatchAsync([EnumeratorCancellation] CancellationToken ct)
    {
        string[]? last = null;
        while (!ct.IsCancellationRequested)
        {
            string[]? now = await ResolveAsync(ct).ConfigureAwait(false);
            if (now is not null && (last is null || !now.AsSpan().SequenceEqual(last)))
            {
                last = now;
                yield return Array.ConvertAll(now, e => new DiscoveredPeer(e, e));
            }
            else if (last is null)
            {
                // The first answer failed: followers wait for a set, and there is none to keep.
                last = [];
                yield return [];
            }
            try { await Task.Delay(_interval, ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { yield break; }
        }
    }

    /// <summary>The endpoints the name resolves to now, sorted so that a reordered answer is no change; null when unknown.</summary>
    private async Task<string[]?> ResolveAsync(CancellationToken ct)
    {
        try
        {
            IPAddress[] addresses = await _resolver.ResolveAsync(_host, ct).ConfigureAwait(false);
            var endpoints = new SortedSet<string>(StringComparer.Ordinal);
            foreach (IPAddress a in addresses) endpoints.Add(new IPEndPoint(a, _port).ToString());
            return [.. endpoints];
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.HostNotFound)
        {
            return [];
        }
        catch (SocketException e)
        {
            _logger.LogWarning("{Source}: resolution failed ({Error}); keeping the last answer", Source, e.Message);
            return null;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return null;
        }
    }
}
