using Cluster.Protos.V1;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.Transport;

/// <summary>
/// The methods whose large messages are decoded into pooled buffers, as the generated methods with other
/// marshallers: servers bind these (<see cref="PooledMethodBinder"/>), clients call them
/// (<see cref="PooledMethodInterceptor"/>), so generated bases and clients keep working unchanged. A message read
/// with a pooled decoder is valid until it is released; read such streams through a <see cref="PooledReader{T}"/>,
/// which releases each message when it reads the next.
/// </summary>
public static class PooledMethods
{
    /// <summary>The expert node reads dispatch frames pooled; the attention node reads combine frames pooled.</summary>
    public static readonly Method<DispatchFrame, CombineFrame> Dispatch = Create(MethodType.DuplexStreaming, "cluster.v1.ExpertService", "Dispatch",
        DispatchFrame.Parser, DispatchFrameDecoder.Instance, CombineFrame.Parser, CombineFrameDecoder.Instance);
    /// <summary>The decode node reads the prefill node's cache slices pooled.</summary>
    public static readonly Method<PrefillRequest, KvTransfer> Prefill = Create(MethodType.ServerStreaming, "cluster.v1.AttentionService", "Prefill",
        PrefillRequest.Parser, null, KvTransfer.Parser, KvTransferDecoder.Instance);
    public static readonly Method<TensorFrame, TensorFrame> Exchange = Create(MethodType.DuplexStreaming, "cluster.v1.TensorStream", "Exchange",
        TensorFrame.Parser, TensorFrameDecoder.Instance, TensorFrame.Parser, TensorFrameDecoder.Instance);

    private static readonly Dictionary<string, IMethod> ByName = new(StringComparer.Ordinal)
    {
        [Dispatch.FullName] = Dispatch,
        [Prefill.FullName] = Prefill,
        [Exchange.FullName] = Exchange,
    };

    /// <summary>The pooled twin of <paramref name="method"/>, or the method itself when it has none.</summary>
    public static Method<TRequest, TResponse> For<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class where TResponse : class =>
        ByName.TryGetValue(method.FullName, out var pooled) && pooled is Method<TRequest, TResponse> typed ? typed : method;

    /// <summary>What a server binds for <paramref name="method"/>: its pooled twin, or the method with its requests' parse failures reported as INTERNAL.</summary>
    public static Method<TRequest, TResponse> ForServer<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class where TResponse : class
    {
        Method<TRequest, TResponse> pooled = For(method);
        return !ReferenceEquals(pooled, method) ? pooled
            : new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, PooledMarshaller.Checked(method.RequestMarshaller), method.ResponseMarshaller);
    }

    private static Method<TRequest, TResponse> Create<TRequest, TResponse>(MethodType type, string service, string name,
        MessageParser<TRequest> requestParser, IPooledDecoder<TRequest>? requestDecoder,
        MessageParser<TResponse> responseParser, IPooledDecoder<TResponse>? responseDecoder)
        where TRequest : class, IMessage<TRequest>, IBufferMessage where TResponse : class, IMessage<TResponse>, IBufferMessage =>
        new(type, service, name, PooledMarshaller.Create(requestParser, requestDecoder), PooledMarshaller.Create(responseParser, responseDecoder));
}
