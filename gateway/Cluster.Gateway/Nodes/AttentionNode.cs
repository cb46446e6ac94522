using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Grpc.Core.Interceptors;
using HealthClient = Grpc.Health.V1.Health.HealthClient;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// One attention node as the gateway sees it: a channel, its configured role, its last statistics, this gateway's
/// ledger there (requests in flight, cache blocks they reserve, prompt tokens awaiting their first token), the
/// prefixes sent there, and whether it recently refused a connection. The ledger is changed only by
/// <see cref="Admission"/> under its lock.
/// </summary>
public sealed class AttentionNode : IDisposable
{
    private static readonly TimeSpan s_downFor = TimeSpan.FromSeconds(2);
    // Block hashes remembered per node: 64k blocks of 64 tokens cover 4M prompt tokens.
    private const int AffinityCapacity = 1 << 16;
    private int _inFlight, _reservedBlocks;
    private long _pendingPromptTokens;
    private readonly TimeProvider _time;
    // In the time provider's timestamps; 0 = not down.
    private long _downUntil;
    private NodeState _state = NodeState.Unknown;

    /// <param name="calls">Counts this node's AttentionService calls by method and status (the gateway's errors by node); null: none.</param>
    /// <param name="token">The cluster's credential, put on every call to the node.</param>
    public AttentionNode(string endpoint, NodeRole role, TimeProvider time, Metrics.NodeCallMetrics? calls = null, ClusterToken? token = null)
    {
        _time = time;
        Endpoint = endpoint;
        Role = role;
        Address = PeerAddress.TryParse(endpoint, out Uri? address) ? address : throw new ArgumentException($"attention node '{endpoint}' is not host:port");
        // Streams are never retried by the channel; the gateway itself moves a refused request to another node.
        Channel = PeerChannel.ForAddress(Address, new GrpcClientOptions { Resilience = null, ConnectTimeout = TimeSpan.FromSeconds(2), ClusterToken = token });
        Client = new AttentionService.AttentionServiceClient(calls is null ? Channel.Invoker : Channel.Invoker.Intercept(calls.For(endpoint)));
        Health = new HealthClient(Channel.Invoker);
    }

    public string Endpoint { get; }
    public NodeRole Role { get; }
    public Uri Address { get; }
    public PeerChannel Channel { get; }
    public AttentionService.AttentionServiceClient Client { get; }
    public HealthClient Health { get; }
    public PrefixAffinity Affinity { get; } = new(AffinityCapacity);
    public NodeState State => Volatile.Read(ref _state);
    /// <summary>Gone from discovery: no request is placed here again. Set by <see cref="Admission"/> under its lock.</summary>
    public bool Retired { get; internal set; }

    /// <summary>This gateway's requests on the node, from admission until their stream ends.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);
    /// <summary>Cache blocks this gateway's requests there may fill: prompt + max_tokens each.</summary>
    public int ReservedBlocks => Volatile.Read(ref _reservedBlocks);
    /// <summary>Prompt tokens sent there (to prefill) whose first token has not come back yet.</summary>
    public long PendingPromptTokens => Volatile.Read(ref _pendingPromptTokens);
    /// <summary>Refused a connection in the last two seconds: tried only after the others.</summary>
    public bool RecentlyDown => _time.GetTimestamp() < Volatile.Read(ref _downUntil);

    /// <summary>Cache blocks still free for this gateway; unbounded when the node does not count blocks.</summary>
    public long FreeBlocks
    {
        get
        {
            NodeState s = State;
            return s.KnowsCapacity ? s.BlocksTotal - ReservedBlocks : long.MaxValue;
        }
    }

    /// <summary>Whether this gateway's ledger leaves room there for the request's whole context, within <paramref name="maxInFlight"/> requests.</summary>
    public bool HasRoomFor(AdmissionRequest request, int maxInFlight)
    {
        NodeState s = State;
        if (InFlight >= maxInFlight) return false;
        return !s.KnowsCapacity || ReservedBlocks + s.BlocksFor(request.ContextTokens) <= s.BlocksTotal;
    }

    /// <summary>The prefill work the request adds here: prompt tokens queued, plus its own not expected in the node's cache.</summary>
    public long PrefillCost(AdmissionRequest request)
    {
        int size = State.BlockSize;
        long cached = size > 0 ? (long)Affinity.CachedBlocks(request.Chain(size)) * size : 0;
        return PendingPromptTokens + request.Prompt.Count - cached;
    }

    internal void Reserve(int blocks)
    {
        Volatile.Write(ref _inFlight, _inFlight + 1);
        Volatile.Write(ref _reservedBlocks, _reservedBlocks + blocks);
    }

    internal void Unreserve(int blocks)
    {
        Volatile.Write(ref _inFlight, _inFlight - 1);
        Volatile.Write(ref _reservedBlocks, _reservedBlocks - blocks);
    }

    internal void AddPendingPrompt(long tokens) => Volatile.Write(ref _pendingPromptTokens, _pendingPromptTokens + tokens);

    public void Observe(AttentionStats stats)
    {
        // A node that reports no role (a stand-in) is taken at its configured one.
        NodeRole reported = stats.Role;
        Volatile.Write(ref _state, reported != NodeRole.Unspecified && reported != Role
            ? new NodeState(stats, $"configured as a {Role.Name()} node but reports role {reported.Name()}", false)
            : new NodeState(stats, null, true));
    }

    /// <summary>
    /// A GetStats that failed. A node that only answered late keeps its last statistics and its requests; one that
    /// cannot be reached or fails the call is not used until it answers again.
    /// </summary>
    public void ObserveFailure(StatusCode code, string detail)
    {
        NodeState last = State;
        bool slow = code == StatusCode.DeadlineExceeded && last.Usable;
        Volatile.Write(ref _state, new NodeState(last.Stats, $"{code}: {detail}", slow));
        if (code == StatusCode.Unavailable) MarkDown();
    }

    public void MarkDown() => Volatile.Write(ref _downUntil, _time.GetTimestamp() + (long)(s_downFor.TotalSeconds * _time.TimestampFrequency));

    public void MarkUp() => Volatile.Write(ref _downUntil, 0);

    public void Dispose() => Channel.Dispose();
}
