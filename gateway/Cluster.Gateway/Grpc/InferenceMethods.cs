using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;

namespace Cluster.Gateway.Grpc;

/// <summary>cluster.v1.Inference on the wire: the gateway's public gRPC API.</summary>
public static class InferenceMethods
{
    public const string ServiceName = "cluster.v1.Inference";

    public static readonly Method<GenerateRequest, GenerateResponse> Generate =
        new(MethodType.Unary, ServiceName, "Generate", GenerateRequest.Parser, GenerateResponse.Parser);
    public static readonly Method<GenerateRequest, GenerateChunk> GenerateStream =
        new(MethodType.ServerStreaming, ServiceName, "GenerateStream", GenerateRequest.Parser, GenerateChunk.Parser);
    public static readonly Method<ListModelsRequest, ListModelsResponse> ListModels =
        new(MethodType.Unary, ServiceName, "ListModels", ListModelsRequest.Parser, ListModelsResponse.Parser, idempotent: true);
}
