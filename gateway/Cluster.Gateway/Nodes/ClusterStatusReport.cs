using System.Text.Json.Serialization;
using Cluster.Protos.V1;

namespace Cluster.Gateway.Nodes;

/// <summary>GET /cluster/status: this gateway's queue and every node's statistics, as <c>cluster status</c> prints them.</summary>
public sealed class ClusterStatusReport
{
    public required GatewayStatus Gateway { get; init; }
    public required List<NodeStatus> Nodes { get; init; }

    /// <summary>The report from the nodes' latest answers (refresh them first); a node that failed to answer shows its error and zeros.</summary>
    public static ClusterStatusReport From(Admission admission, IReadOnlyList<AttentionNode> nodes, int gatewayRestarts)
    {
        var list = new List<NodeStatus>(nodes.Count);
        foreach (AttentionNode node in nodes)
        {
            NodeState state = node.State;
            AttentionStats s = state.Error is null && state.Stats is { } stats ? stats : new AttentionStats();
            list.Add(new NodeStatus
            {
                Endpoint = node.Endpoint,
                NodeId = s.NodeId,
                Role = (s.Role != NodeRole.Unspecified ? s.Role : node.Role).Name(),
                State = state.Error ?? "ok",
                Running = s.Running,
                Queued = s.Queued,
                QueuedPromptTokens = s.QueuedPromptTokens,
                BlockSize = s.BlockSize,
                BlocksTotal = s.BlocksTotal,
                BlocksUsed = s.BlocksUsed,
                BlocksCached = s.BlocksCached,
                BlocksAvailable = s.BlocksAvailable,
                PrefixLookupTokens = s.PrefixLookupTokens,
                PrefixHitTokens = s.PrefixHitTokens,
                PrefixHitRate = s.PrefixLookupTokens > 0 ? (double)s.PrefixHitTokens / s.PrefixLookupTokens : 0,
                PromptTokens = s.PromptTokens,
                GeneratedTokens = s.GeneratedTokens,
                KvBytesSent = s.KvBytesSent,
                KvBytesReceived = s.KvBytesReceived,
                Restarts = s.Restarts,
            });
        }
        return new ClusterStatusReport { Gateway = new GatewayStatus { Queued = admission.Queued, InFlight = admission.InFlight, Restarts = gatewayRestarts }, Nodes = list };
    }
}

public sealed class GatewayStatus
{
    /// <summary>Requests waiting for room on a node.</summary>
    public int Queued { get; init; }
    /// <summary>Requests admitted to a node and not yet ended.</summary>
    public int InFlight { get; init; }
    /// <summary>How often the supervisor (<c>cluster up</c>) has restarted this gateway.</summary>
    public int Restarts { get; init; }
}

public sealed class NodeStatus
{
    public required string Endpoint { get; init; }
    public required string NodeId { get; init; }
    public required string Role { get; init; }
    /// <summary>"ok", or why the node's statistics could not be had.</summary>
    public required string State { get; init; }
    public uint Running { get; init; }
    public uint Queued { get; init; }
    public ulong QueuedPromptTokens { get; init; }
    public uint BlockSize { get; init; }
    public uint BlocksTotal { get; init; }
    public uint BlocksUsed { get; init; }
    public uint BlocksCached { get; init; }
    public uint BlocksAvailable { get; init; }
    public ulong PrefixLookupTokens { get; init; }
    public ulong PrefixHitTokens { get; init; }
    public double PrefixHitRate { get; init; }
    public ulong PromptTokens { get; init; }
    public ulong GeneratedTokens { get; init; }
    public ulong KvBytesSent { get; init; }
    public ulong KvBytesReceived { get; init; }
    /// <summary>How often the supervisor (<c>cluster up</c>) has restarted the node, as it reports.</summary>
    public uint Restarts { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ClusterStatusReport))]
internal sealed partial class ClusterStatusJson : JsonSerializerContext;
