using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Discovery;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// Keeps admission's set of attention nodes equal to what discovery reports: one watch per pool (both, prefill,
/// decode); each report replaces that pool's nodes, keeping the node (and its ledger) of every endpoint still there,
/// making new ones for endpoints that appeared (asked for statistics at once, used once they answer) and dropping
/// the rest from routing before the next request is placed.
/// </summary>
public sealed class NodeMembership : IAsyncDisposable
{
    private readonly Admission _admission;
    private readonly StatsPoller _stats;
    private readonly TimeProvider _time;
    private readonly Metrics.NodeCallMetrics _calls;
    private readonly ILogger _logger;
    private readonly (IPeerDiscovery Source, NodeRole Role)[] _pools;
    private readonly Dictionary<NodeRole, List<AttentionNode>> _current = [];
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stop = new();
    private Task[] _watches = [];
    private readonly ClusterToken? _token;

    public NodeMembership(GatewayDiscovery discovery, Admission admission, StatsPoller stats, TimeProvider time, Metrics.NodeCallMetrics calls,
        IOptions<NodeProbeOptions> probe, ILogger<NodeMembership> logger)
    {
        _token = probe.Value.ClusterToken;
        _admission = admission;
        _stats = stats;
        _time = time;
        _calls = calls;
        _logger = logger;
        var pools = new List<(IPeerDiscovery, NodeRole)>(3);
        if (discovery.Attention is { } both) pools.Add((both, NodeRole.Both));
        if (discovery.Prefill is { } prefill) pools.Add((prefill, NodeRole.Prefill));
        if (discovery.Decode is { } decode) pools.Add((decode, NodeRole.Decode));
        _pools = [.. pools];
        foreach (var (_, role) in _pools) _current[role] = [];
    }

    /// <summary>Starts every watch; completes once each pool's first report is applied, so a static list is in place at once.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        var first = new TaskCompletionSource[_pools.Length];
        _watches = new Task[_pools.Length];
        for (int i = 0; i < _pools.Length; i++)
        {
            first[i] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _watches[i] = WatchAsync(_pools[i].Source, _pools[i].Role, first[i], _stop.Token);
        }
        await Task.WhenAll(Array.ConvertAll(first, f => f.Task)).WaitAsync(ct).ConfigureAwait(false);
    }

    private async Task WatchAsync(IPeerDiscovery source, NodeRole role, TaskCompletionSource first, CancellationToken stop)
    {
        try
        {
            await foreach (IReadOnlyList<DiscoveredPeer> peers in source.WatchAsync(stop).ConfigureAwait(false))
            {
                List<AttentionNode> added = Apply(source, role, peers);
                // The first reports come before the statistics' first round, which asks every node.
                if (!first.Task.IsCompleted) first.TrySetResult();
                else if (added.Count > 0) await _stats.AskAsync(added).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
        catch (Exception e)
        {
            _logger.LogError(e, "{Source}: following the {Role} nodes stopped", source.Source, role.Name());
            first.TrySetException(e);
        }
        finally { first.TrySetResult(); }
    }

    /// <summary>Replaces the pool's nodes by <paramref name="peers"/>; returns the nodes added.</summary>
    private List<AttentionNode> Apply(IPeerDiscovery source, NodeRole role, IReadOnlyList<DiscoveredPeer> peers)
    {
        lock (_lock)
        {
            List<AttentionNode> before = _current[role];
            var next = new List<AttentionNode>(peers.Count);
            var added = new List<AttentionNode>();
            foreach (DiscoveredPeer peer in peers)
            {
                if (before.Find(n => n.Endpoint == peer.Endpoint) is { } kept)
                {
                    next.Add(kept);
                    continue;
                }
                if (next.Exists(n => n.Endpoint == peer.Endpoint)) continue;
                if (!PeerAddress.TryParse(peer.Endpoint, out _))
                {
                    _logger.LogWarning("{Source}: {Id} has endpoint '{Endpoint}', which is not host:port; not used", source.Source, peer.Id, peer.Endpoint);
                    continue;
                }
                var node = new AttentionNode(peer.Endpoint, role, _time, _calls, _token);
                next.Add(node);
                added.Add(node);
                _logger.LogInformation("{Source}: {Role} node {Endpoint} ({Id}) appeared", source.Source, role.Name(), peer.Endpoint, peer.Id);
            }
            foreach (AttentionNode gone in before)
                if (!next.Contains(gone)) _logger.LogWarning("{Source}: {Role} node {Endpoint} is gone; no longer routed to", source.Source, role.Name(), gone.Endpoint);
            _current[role] = next;
            var all = new List<AttentionNode>();
            foreach (var (_, r) in _pools) all.AddRange(_current[r]);
            _admission.SetNodes(all);
            return added;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_watches).ConfigureAwait(false);
        _stop.Dispose();
    }
}
