using Cluster.Gateway.Nodes.Policies;
using Cluster.Protos.V1;
using Microsoft.Extensions.Options;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// The queue and the ledger. Admits a request to a node only while the node has room for its whole context (prompt +
/// max_tokens, in the node's cache blocks, by this gateway's own ledger) and fewer than the per-node limit of
/// requests; the rest wait in one FIFO queue and are admitted in order as requests end. Which node is the role
/// policies' choice (<see cref="IPlacementPolicy"/>): a split request goes to the decode policy's node with the
/// prefill policy's, and what the split pairs cannot take goes to the policy of role both. The set of nodes changes
/// as discovery reports them (<see cref="SetNodes"/>); it owns them and disposes each once it is gone and idle.
/// Thread-safe.
/// </summary>
public sealed class Admission : IDisposable
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _queue = new();
    private NodePools _pools = NodePools.Empty;
    // Nodes gone from discovery with requests still running there: their channels live until the last one ends.
    private readonly HashSet<AttentionNode> _retiring = [];
    private readonly IPlacementPolicy _both, _prefill, _decode;
    private readonly int _maxQueued;
    private int _turn, _inFlight;

    public Admission(IOptions<AdmissionOptions> options, IEnumerable<IPlacementPolicy> policies)
    {
        _maxQueued = options.Value.MaxQueued;
        IPlacementPolicy? both = null, prefill = null, decode = null;
        // The last registered for a role wins, as with services.
        foreach (IPlacementPolicy policy in policies)
        {
            if (policy.Role == NodeRole.Both) both = policy;
            else if (policy.Role == NodeRole.Prefill) prefill = policy;
            else if (policy.Role == NodeRole.Decode) decode = policy;
        }
        _both = both ?? throw new ArgumentException("no placement policy for role both");
        _prefill = prefill ?? throw new ArgumentException("no placement policy for role prefill");
        _decode = decode ?? throw new ArgumentException("no placement policy for role decode");
    }

    /// <summary>The nodes requests may be placed on now.</summary>
    public IReadOnlyList<AttentionNode> Nodes => Volatile.Read(ref _pools).All;

    /// <summary>
    /// Makes <paramref name="nodes"/> the set to place requests on. A node left out gets no request from now on;
    /// those running there go on (and fail as they would) and its channel is disposed when the last one ends.
    /// Waiting requests are placed again, as a new node may have room and a lost one may leave no route.
    /// </summary>
    public void SetNodes(IReadOnlyList<AttentionNode> nodes)
    {
        lock (_lock)
        {
            var kept = new HashSet<AttentionNode>(nodes);
            foreach (AttentionNode old in _pools.All)
                if (!kept.Contains(old)) Retire(old);
            Volatile.Write(ref _pools, new NodePools([.. nodes]));
            Pump();
        }
    }

    private void Retire(AttentionNode node)
    {
        node.Retired = true;
        if (node.InFlight == 0) node.Dispose();
        else _retiring.Add(node);
    }

    /// <summary>Requests waiting for room.</summary>
    public int Queued
    {
        get { lock (_lock) return _queue.Count; }
    }

    /// <summary>Requests admitted and not yet ended.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Whether some node (or prefill/decode pair) is usable, so a request could be placed once there is room.</summary>
    public bool HasRoute() => Volatile.Read(ref _pools).HasRoute();

    /// <summary>
    /// A place for the request: at once when nobody waits and a node has room, else when its turn in the queue comes.
    /// Fails with Unavailable when no node is usable, InvalidRequest when no node could ever hold the request, and
    /// QueueFull when the queue is full; cancelling leaves the queue.
    /// </summary>
    public async Task<Placement> AdmitAsync(AdmissionRequest request, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        Waiter waiter;
        lock (_lock)
        {
            if (_pools.Unplaceable(request) is GatewayException e) throw e;
            if (_queue.Count == 0 && TryPlace(request, null) is { } placement) return placement;
            if (_queue.Count >= _maxQueued)
                throw new GatewayException(GatewayErrorKind.QueueFull,
                    $"{_queue.Count} requests already wait for room on the attention nodes (the gateway queues at most {_maxQueued}); retry later");
            waiter = Enqueue(request, atHead: false);
        }
        return await WaitAsync(waiter, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// After a node refused <paramref name="refused"/> before its first token: frees its place and gives the request
    /// another node not in <paramref name="tried"/>. With none left, null, or with <paramref name="requeue"/> a place
    /// at the head of the queue (Waited), given once a request ends or the statistics are refreshed; never at once,
    /// as the refusal says the ledger is behind the node.
    /// </summary>
    public async Task<(Placement? Next, bool Waited)> RetryAsync(Placement refused, IReadOnlySet<AttentionNode> tried, bool requeue, CancellationToken ct)
    {
        Waiter waiter;
        lock (_lock)
        {
            Free(refused);
            if (TryPlace(refused.Request, tried) is { } next) return (next, false);
            if (!requeue) return (null, false);
            waiter = Enqueue(refused.Request, atHead: true);
        }
        return (await WaitAsync(waiter, ct).ConfigureAwait(false), true);
    }

    /// <summary>
    /// After the node serving <paramref name="lost"/> failed mid-stream: frees its place and places
    /// <paramref name="continuation"/> (the same context, more of it prompt) on a node not in <paramref name="avoid"/>,
    /// at once or from the head of the queue, as it was admitted long ago. Null when no other node is usable.
    /// </summary>
    public async Task<Placement?> MigrateAsync(Placement lost, AdmissionRequest continuation, IReadOnlySet<AttentionNode> avoid, CancellationToken ct)
    {
        Waiter waiter;
        lock (_lock)
        {
            Free(lost);
            if (TryPlace(continuation, avoid) is { } next) return next;
            if (!_pools.HasRoute(avoid))
            {
                Pump();
                return null;
            }
            waiter = Enqueue(continuation, atHead: true);
        }
        return await WaitAsync(waiter, ct).ConfigureAwait(false);
    }

    /// <summary>The first token came back: the prompt no longer weighs on the node that ran it.</summary>
    public void FirstToken(Placement placement)
    {
        lock (_lock)
        {
            if (placement.Released || placement.FirstTokenSeen) return;
            placement.FirstTokenSeen = true;
            placement.PrefillOn.AddPendingPrompt(-placement.Request.Prompt.Count);
        }
    }

    /// <summary>The request ended: its place is given to the requests waiting, in order. Idempotent.</summary>
    public void Release(Placement placement)
    {
        lock (_lock)
        {
            Free(placement);
            Pump();
        }
    }

    /// <summary>Admits waiting requests that now fit, after node statistics changed.</summary>
    public void Refresh()
    {
        lock (_lock) Pump();
    }

    private void Pump()
    {
        while (_queue.First is { } first)
        {
            Waiter waiter = first.Value;
            GatewayException? failure = _pools.Unplaceable(waiter.Request);
            Placement? placement = failure is null ? TryPlace(waiter.Request, null) : null;
            if (failure is null && placement is null) return;
            _queue.RemoveFirst();
            if (failure is not null) waiter.Done.TrySetException(failure);
            else if (!waiter.Done.TrySetResult(placement!)) Free(placement!);
        }
    }

    private Waiter Enqueue(AdmissionRequest request, bool atHead)
    {
        var waiter = new Waiter(request);
        waiter.Entry = atHead ? _queue.AddFirst(waiter) : _queue.AddLast(waiter);
        return waiter;
    }

    private async Task<Placement> WaitAsync(Waiter waiter, CancellationToken ct)
    {
        var registration = ct.UnsafeRegister(static (state, token) =>
        {
            var (self, w) = ((Admission, Waiter))state!;
            self.Abandon(w, token);
        }, (this, waiter));
        await using (registration.ConfigureAwait(false))
            return await waiter.Done.Task.ConfigureAwait(false);
    }

    /// <summary>A client gone while waiting leaves the queue, which may let the next one in.</summary>
    private void Abandon(Waiter waiter, CancellationToken token)
    {
        lock (_lock)
        {
            if (waiter.Entry.List is null) return;
            _queue.Remove(waiter.Entry);
            waiter.Done.TrySetCanceled(token);
            Pump();
        }
    }

    private void Free(Placement placement)
    {
        if (placement.Released) return;
        placement.Released = true;
        placement.Node.Unreserve(placement.Blocks);
        if (!placement.FirstTokenSeen) placement.PrefillOn.AddPendingPrompt(-placement.Request.Prompt.Count);
        Volatile.Write(ref _inFlight, _inFlight - 1);
        if (placement.Node.Retired && placement.Node.InFlight == 0 && _retiring.Remove(placement.Node)) placement.Node.Dispose();
    }

    private Placement? TryPlace(AdmissionRequest request, IReadOnlySet<AttentionNode>? tried)
    {
        int turn = _turn++;
        NodePools pools = _pools;
        if (_decode.Pick(pools.Decode, request, tried, turn) is { } decode && _prefill.Pick(pools.Prefill, request, tried, turn) is { } prefill)
            return Reserve(request, decode, prefill);
        if (_both.Pick(pools.Both, request, tried, turn) is { } both) return Reserve(request, both, null);
        return null;
    }

    private Placement Reserve(AdmissionRequest request, AttentionNode node, AttentionNode? prefill)
    {
        int blocks = node.State.BlocksFor(request.ContextTokens);
        node.Reserve(blocks);
        AttentionNode runner = prefill ?? node;
        runner.AddPendingPrompt(request.Prompt.Count);
        if (runner.State.BlockSize is int size and > 0) runner.Affinity.Add(request.Chain(size));
        Volatile.Write(ref _inFlight, _inFlight + 1);
        return new Placement(request, node, prefill, blocks);
    }

    private sealed class Waiter(AdmissionRequest request)
    {
        public AdmissionRequest Request { get; } = request;
        public TaskCompletionSource<Placement> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public LinkedListNode<Waiter> Entry { get; set; } = null!;
    }

    /// <summary>Disposes every node's channel, those still running requests included: the gateway is stopping.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (AttentionNode node in _pools.All) node.Dispose();
            foreach (AttentionNode node in _retiring) node.Dispose();
            _retiring.Clear();
            Volatile.Write(ref _pools, NodePools.Empty);
        }
    }
}
