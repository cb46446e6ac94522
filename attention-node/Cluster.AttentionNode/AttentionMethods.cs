using Cluster.Protos.V1;
using Cluster.Transport;

namespace Cluster.AttentionNode;

/// <summary>cluster.v1.AttentionService on the wire (gateway -> attention node).</summary>
public static class AttentionMethods
{
    public const string ServiceName = "cluster.v1.AttentionService";

    public static readonly Method<TokenGenerateRequest, TokenEvent> Generate =
        new(MethodType.ServerStreaming, ServiceName, "Generate", TokenGenerateRequest.Parser, TokenEvent.Parser);
    public static readonly Method<GetStatsRequest, AttentionStats> GetStats =
        new(MethodType.Unary, ServiceName, "GetStats", GetStatsRequest.Parser, AttentionStats.Parser, idempotent: true);
}
