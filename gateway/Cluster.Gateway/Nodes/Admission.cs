using Cluster.Protos.V1;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// Admits a request to a node only while the node has room for its whole context (prompt + max_tokens, in the node's
/// cache blocks, by this gateway's own ledger) and fewer than the per-node limit of requests; the rest wait in one
/// FIFO queue and are admitted in order as requests end. A split request (prefill/decode) goes to the decode node
/// with most free blocks, then fewest requests, and the prefill node with the lowest cost: prompt tokens it has not
/// answered yet plus those of this prompt it is not expected to hold. Nodes of role both take what the split pairs
/// cannot, the one with the lowest cost first. The set of nodes changes as discovery reports them
/// (<see cref="SetNodes"/>); it owns them and disposes each once it is gone and idle. Thread-safe.
/// </summary>
public sealed class Admission : IDisposable
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _queue = new();
    // Replaced whole under the lock, never changed in place, so readers outside it see one consistent set.
    private AttentionNode[] _all = [], _both = [], _prefill = [], _decode = [];
    // Nodes gone from discovery with requests still running there: their channels live until the last one ends.
    private readonly HashSet<AttentionNode> _retiring = [];
    private readonly int _maxInFlightPerNode, _maxQueued;
    private int _turn, _inFlight;

    public Admission(int maxInFlightPerNode, int maxQueued)
    {
        _maxInFlightPerNode = maxInFlightPerNode;
        _maxQueued = maxQueued;
    }

    /// <summary>The nodes requests may be placed on now.</summary>
    public IReadOnlyList<AttentionNode> Nodes => Volatile.Read(ref _all);

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
            foreach (AttentionNode old in _all)
                if (!kept.Contains(old)) Retire(old);
            AttentionNode[] all = [.. nodes];
            _both = Array.FindAll(all, n => n.Role == NodeRole.Both);
            _prefill = Array.FindAll(all, n => n.Role == NodeRole.Prefill);
            _decode = Array.FindAll(all, n => n.Role == NodeRole.Decode);
            Volatile.Write(ref _all, all);
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
    public bool HasRoute()
    {
        static bool Usable(AttentionNode n) => n.State.Usable;
        return Array.Exists(_both, Usable) || (Array.Exists(_prefill, Usable) && Array.Exists(_decode, Usable));
    }

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
            if (Unplaceable(request) is GatewayException e) throw e;
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
            GatewayException? failure = Unplaceable(waiter.Request);
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
        if (BestDecode(request, tried, turn) is { } decode && BestPrefill(request, tried, turn) is { } prefill)
            return Reserve(request, decode, prefill);
        if (BestBoth(request, tried, turn) is { } both) return Reserve(request, both, null);
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

    // Each choice ranks by a key, nodes that recently refused a connection last; ties are taken in turn.

    private AttentionNode? BestDecode(AdmissionRequest request, IReadOnlySet<AttentionNode>? tried, int turn)
    {
        AttentionNode? best = null;
        (bool, long, int, int) bestKey = default;
        for (int i = 0; i < _decode.Length; i++)
        {
            AttentionNode n = _decode[i];
            if (!HasRoom(n, request, tried)) continue;
            var key = (n.RecentlyDown, -n.FreeBlocks, n.InFlight, Rotation(i, turn, _decode.Length));
            if (best is null || key.CompareTo(bestKey) < 0) (best, bestKey) = (n, key);
        }
        return best;
    }

    private AttentionNode? BestPrefill(AdmissionRequest request, IReadOnlySet<AttentionNode>? tried, int turn)
    {
        AttentionNode? best = null;
        (bool, long, int) bestKey = default;
        for (int i = 0; i < _prefill.Length; i++)
        {
            AttentionNode n = _prefill[i];
            if (!n.State.Usable || tried?.Contains(n) == true || !CanEverHold(n.State, request.Prompt.Count)) continue;
            var key = (n.RecentlyDown, PrefillCost(n, request), Rotation(i, turn, _prefill.Length));
            if (best is null || key.CompareTo(bestKey) < 0) (best, bestKey) = (n, key);
        }
        return best;
    }

    private AttentionNode? BestBoth(AdmissionRequest request, IReadOnlySet<AttentionNode>? tried, int turn)
    {
        AttentionNode? best = null;
        (bool, long, int, int) bestKey = default;
        for (int i = 0; i < _both.Length; i++)
        {
            AttentionNode n = _both[i];
            if (!HasRoom(n, request, tried)) continue;
            var key = (n.RecentlyDown, PrefillCost(n, request), n.InFlight, Rotation(i, turn, _both.Length));
            if (best is null || key.CompareTo(bestKey) < 0) (best, bestKey) = (n, key);
        }
        return best;
    }

    private static int Rotation(int index, int turn, int count) => (int)((uint)(index - turn) % (uint)count);

    private bool HasRoom(AttentionNode node, AdmissionRequest request, IReadOnlySet<AttentionNode>? tried)
    {
        NodeState s = node.State;
        if (!s.Usable || tried?.Contains(node) == true || node.InFlight >= _maxInFlightPerNode) return false;
        return !s.KnowsCapacity || node.ReservedBlocks + s.BlocksFor(request.ContextTokens) <= s.BlocksTotal;
    }

    /// <summary>The prefill work the request adds to a node: prompt tokens queued there, plus its own not expected in the node's cache.</summary>
    private static long PrefillCost(AttentionNode node, AdmissionRequest request)
    {
        int size = node.State.BlockSize;
        long cached = size > 0 ? (long)node.Affinity.CachedBlocks(request.Chain(size)) * size : 0;
        return node.PendingPromptTokens + request.Prompt.Count - cached;
    }

    /// <summary>Whether a node's whole cache could ever hold <paramref name="tokens"/> tokens (always, when it does not count blocks).</summary>
    private static bool CanEverHold(NodeState s, int tokens) => !s.KnowsCapacity || s.BlocksFor(tokens) <= s.BlocksTotal;

    /// <summary>Why the request cannot be placed however long it waits, or null.</summary>
    private GatewayException? Unplaceable(AdmissionRequest request)
    {
        // A prefill node holds the prompt while it runs it; a decode node is a route only with a prefill node that can.
        bool prefillUp = false, prefillFits = false;
        NodeState? largestPrefill = null;
        foreach (AttentionNode n in _prefill)
        {
            NodeState s = n.State;
            if (!s.Usable) continue;
            prefillUp = true;
            if (CanEverHold(s, request.Prompt.Count)) prefillFits = true;
            else if (largestPrefill is null || Tokens(s) > Tokens(largestPrefill)) largestPrefill = s;
        }
        bool routed = false;
        NodeState? largest = null;
        foreach (AttentionNode n in _all)
        {
            NodeState s = n.State;
            if (!s.Usable || n.Role == NodeRole.Prefill || (n.Role == NodeRole.Decode && !prefillUp)) continue;
            routed = true;
            if (n.Role == NodeRole.Decode && !prefillFits) continue;
            if (CanEverHold(s, request.ContextTokens)) return null;
            if (largest is null || Tokens(s) > Tokens(largest)) largest = s;
        }
        if (!routed)
        {
            if (_all.Length == 0) return new GatewayException(GatewayErrorKind.Unavailable, "no attention node can take the request (discovery has found none)");
            var why = new List<string>(_all.Length);
            foreach (AttentionNode n in _all)
                if (!n.State.Usable) why.Add($"{n.Endpoint}: {n.State.Error}");
            return new GatewayException(GatewayErrorKind.Unavailable, $"no attention node can take the request ({string.Join("; ", why)})");
        }
        if (largest is null)
            return new GatewayException(GatewayErrorKind.InvalidRequest,
                $"the prompt needs {largestPrefill!.BlocksFor(request.Prompt.Count)} cache blocks of {largestPrefill.BlockSize} tokens "
                + $"({request.Prompt.Count} tokens), more than any prefill node holds (at most {largestPrefill.BlocksTotal} blocks); reduce the prompt",
                null, "context_length_exceeded");
        return new GatewayException(GatewayErrorKind.InvalidRequest,
            $"the request needs {largest.BlocksFor(request.ContextTokens)} cache blocks of {largest.BlockSize} tokens "
            + $"({request.Prompt.Count} prompt + {request.MaxTokens} completion tokens), more than any attention node holds "
            + $"(at most {largest.BlocksTotal} blocks, {Tokens(largest)} tokens); reduce the prompt or max_tokens",
            null, "context_length_exceeded");
    }

    private static long Tokens(NodeState s) => (long)s.BlocksTotal * s.BlockSize;

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
            foreach (AttentionNode node in _all) node.Dispose();
            foreach (AttentionNode node in _retiring) node.Dispose();
            _retiring.Clear();
            Volatile.Write(ref _all, []);
            _both = _prefill = _decode = [];
        }
    }
}
