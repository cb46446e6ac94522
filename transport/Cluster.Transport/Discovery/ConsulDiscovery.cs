using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.Transport.Discovery;

/// <summary>
/// A Consul service's passing instances, followed by blocking queries on /v1/health/service/&lt;name&gt;?passing=true:
/// each query waits (up to <see cref="Wait"/>) for the state to move past the last X-Consul-Index, so an instance that
/// passes its check, fails it or is deregistered is reported as soon as the agent knows. The index rules of Consul's
/// "Blocking Queries" page: an index that goes backwards, or 0, starts over from 0 (a non-blocking read). Such a read,
/// a query after an answer whose index did not move (the wait ran out, or an agent that does not block), and a retry
/// after a failure each wait <see cref="RetryDelay"/> first, so that a misbehaving agent cannot make this loop hot.
/// </summary>
public sealed class ConsulDiscovery(ConsulAgent agent, string service, ILogger? logger = null) : IPeerDiscovery
{
    private readonly ILogger _logger = logger ?? NullLogger.Instance;

    public string Source => $"consul service {service} at {agent.Address}";

    /// <summary>The longest a query is held by the agent before it answers unchanged.</summary>
    public TimeSpan Wait { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>The pause before a query after a failure or an index reset.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    public async IAsyncEnumerable<IReadOnlyList<DiscoveredPeer>> WatchAsync([EnumeratorCancellation] CancellationToken ct)
    {
        ulong index = 0;
        bool pause = false;
        DiscoveredPeer[]? last = null;
        while (!ct.IsCancellationRequested)
        {
            if (pause)
            {
                try { await Task.Delay(RetryDelay, ct).ConfigureAwait(false); }
                catch (OperationCanceledException) { yield break; }
            }
            var (peers, next) = await QueryAsync(index, ct).ConfigureAwait(false);
            if (ct.IsCancellationRequested) yield break;
            if (peers is null)
            {
                pause = true;
                if (last is not null) continue;
                // The first answer failed: followers wait for a set, and there is none to keep.
                last = [];
                yield return last;
                continue;
            }
            bool reset = next == 0 || next < index;
            pause = reset || next == index;
            index = reset ? 0 : next;
            if (last is not null && peers.AsSpan().SequenceEqual(last)) continue;
            last = peers;
            yield return peers;
        }
    }

    /// <summary>The passing instances sorted by id and the answer's index; null peers when the agent could not be read.</summary>
    private async Task<(DiscoveredPeer[]? Peers, ulong Index)> QueryAsync(ulong index, CancellationToken ct)
    {
        try
        {
            var (entries, next) = await agent.PassingAsync(service, index, Wait, ct).ConfigureAwait(false);
            var peers = new DiscoveredPeer[entries.Count];
            for (int i = 0; i < peers.Length; i++)
            {
                ConsulHealthEntry e = entries[i];
                string host = e.Service.Address.Length > 0 ? e.Service.Address : e.Node?.Address ?? "";
                if (host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[')) host = $"[{host}]";
                peers[i] = new DiscoveredPeer(e.Service.Id, $"{host}:{e.Service.Port}");
            }
            Array.Sort(peers, static (a, b) => string.CompareOrdinal(a.Id, b.Id));
            return (peers, next);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is HttpRequestException or JsonException or OperationCanceledException)
        {
            _logger.LogWarning("{Source}: {Error}; keeping the last answer", Source, e.Message);
            return (null, index);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return (null, index);
        }
    }
}
