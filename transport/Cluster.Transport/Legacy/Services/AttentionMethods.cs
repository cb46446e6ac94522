using Cluster.Protos.V1;

namespace Cluster.Transport.Legacy.Services;

/// <summary>cluster.v1.AttentionService on the wire: the attention node serves it, the gateway calls it.</summary>
public static class AttentionMethods
{
    public const string ServiceName = "cluster.v1.AttentionService";

    public static readonly Method<TokenGenerateRequest, TokenEvent> Generate =
        new(MethodType.ServerStreaming, ServiceName, "Generate", TokenGenerateRequest.Parser, TokenEvent.Parser);
    /// <summary>The decode node reads the cache's slices into pooled buffers (each valid until it reads the next).</summary>
    public static readonly Method<PrefillRequest, KvTransfer> Prefill =
        new(MethodType.ServerStreaming, ServiceName, "Prefill", PrefillRequest.Parser, KvTransfer.Parser,
            responseDecoder: KvTransferDecoder.Instance);
    public static readonly Method<GetStatsRequest, AttentionStats> GetStats =
        new(MethodType.Unary, ServiceName, "GetStats", GetStatsRequest.Parser, AttentionStats.Parser, idempotent: true);
}
