using Google.Protobuf;
using Grpc.Core;

namespace Cluster.Transport;

/// <summary>
/// Marshallers that write a message straight into the transport's buffer and read one from the payload as it lies
/// in the transport's buffers (<see cref="DeserializationContext.PayloadAsReadOnlySequence"/>): with an
/// <see cref="IPooledDecoder{T}"/> its large bytes fields land in pooled arrays, without one the generated parser reads it.
/// </summary>
public static class PooledMarshaller
{
    public static Marshaller<T> Create<T>(MessageParser<T> parser, IPooledDecoder<T>? decoder) where T : class, IMessage<T>, IBufferMessage =>
        decoder is null
            ? new Marshaller<T>(Serialize, context => parser.ParseFrom(context.PayloadAsReadOnlySequence()))
            : new Marshaller<T>(Serialize, context => Decode(context, decoder));

    private static void Serialize<T>(T message, SerializationContext context) where T : class, IMessage<T>, IBufferMessage
    {
        context.SetPayloadLength(message.CalculateSize());
        message.WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    private static T Decode<T>(DeserializationContext context, IPooledDecoder<T> decoder) where T : class
    {
        try { return decoder.Decode(context.PayloadAsReadOnlySequence()); }
        catch (InvalidDataException e) { throw new RpcException(new Status(StatusCode.Internal, "Failed to parse message: " + e.Message, e)); }
    }
}
