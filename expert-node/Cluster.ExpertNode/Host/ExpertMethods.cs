using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;

namespace Cluster.ExpertNode.Host;

/// <summary>cluster.v1.ExpertService on the wire.</summary>
public static class ExpertMethods
{
    public const string ServiceName = "cluster.v1.ExpertService";

    /// <summary>Largest dispatch or combine frame either side accepts: a long prompt's prefill goes in one frame per node.</summary>
    public const int MaxFrameBytes = 1 << 30;

    /// <summary>The expert node reads dispatch frames into pooled buffers (each valid until it reads the next).</summary>
    public static readonly Method<DispatchFrame, CombineFrame> Dispatch =
        new(MethodType.DuplexStreaming, ServiceName, "Dispatch", DispatchFrame.Parser, CombineFrame.Parser,
            requestDecoder: DispatchFrameDecoder.Instance);
    public static readonly Method<GetExpertInfoRequest, ExpertNodeInfo> GetInfo =
        new(MethodType.Unary, ServiceName, "GetInfo", GetExpertInfoRequest.Parser, ExpertNodeInfo.Parser, idempotent: true);
}
