using Cluster.Protos.V1;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// What the last GetStats said about a node: its statistics (the last ones it answered with) and, when the last call
/// failed, why. Only a usable node is given requests.
/// </summary>
public sealed record NodeState(AttentionStats? Stats, string? Error, bool Usable)
{
    public static readonly NodeState Unknown = new(null, "no statistics yet", false);

    /// <summary>Tokens per cache block; 0 when the node reports no paged cache, whose room the gateway then cannot count.</summary>
    public int BlockSize => (int)(Stats?.BlockSize ?? 0);
    public int BlocksTotal => (int)(Stats?.BlocksTotal ?? 0);
    public bool KnowsCapacity => BlockSize > 0;

    /// <summary>Blocks a context of <paramref name="tokens"/> tokens takes on the node (0 when it does not count blocks).</summary>
    public int BlocksFor(int tokens) => KnowsCapacity ? (int)(((long)tokens + BlockSize - 1) / BlockSize) : 0;

    /// <summary>Whether the whole cache could ever hold <paramref name="tokens"/> tokens (always, when the node does not count blocks).</summary>
    public bool CanEverHold(int tokens) => !KnowsCapacity || BlocksFor(tokens) <= BlocksTotal;

    /// <summary>Tokens the whole cache holds.</summary>
    public long Tokens => (long)BlocksTotal * BlockSize;
}
