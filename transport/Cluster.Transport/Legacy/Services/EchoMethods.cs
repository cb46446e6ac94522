using Cluster.Protos.V1;

namespace Cluster.Transport.Legacy.Services;

/// <summary>cluster.v1.Echo on the wire: one method of each call type, for tests, interop checks and the benchmark.</summary>
public static class EchoMethods
{
    public const string ServiceName = "cluster.v1.Echo";

    public static readonly Method<EchoRequest, EchoReply> Unary =
        new(MethodType.Unary, ServiceName, "Unary", EchoRequest.Parser, EchoReply.Parser, idempotent: true);
    public static readonly Method<EchoRequest, EchoReply> ServerStream =
        new(MethodType.ServerStreaming, ServiceName, "ServerStream", EchoRequest.Parser, EchoReply.Parser);
    public static readonly Method<EchoRequest, EchoReply> ClientStream =
        new(MethodType.ClientStreaming, ServiceName, "ClientStream", EchoRequest.Parser, EchoReply.Parser);
    public static readonly Method<EchoRequest, EchoReply> Bidi =
        new(MethodType.DuplexStreaming, ServiceName, "Bidi", EchoRequest.Parser, EchoReply.Parser);
}
