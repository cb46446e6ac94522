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
            ? new Marshaller<T>(Serialize, context => Parse(context, parser))
            : new Marshaller<T>(Serialize, context => Decode(context, decoder));

    /// <summary>
    /// <paramref name="inner"/> with a message that does not parse failing the call with INTERNAL "Failed to parse
    /// message" (grpc-dotnet would report the parser's exception as UNKNOWN "Exception was thrown by handler").
    /// </summary>
    public static Marshaller<T> Checked<T>(Marshaller<T> inner) => new(inner.ContextualSerializer, context =>
    {
        try { return inner.ContextualDeserializer(context); }
        catch (InvalidProtocolBufferException e) { throw Malformed(e); }
    });

    private static T Parse<T>(DeserializationContext context, MessageParser<T> parser) where T : class, IMessage<T>
    {
        try { return parser.ParseFrom(context.PayloadAsReadOnlySequence()); }
        catch (InvalidProtocolBufferException e) { throw Malformed(e); }
    }

    private static RpcException Malformed(Exception e) => new(new Status(StatusCode.Internal, "Failed to parse message: " + e.Message, e));

    private static void Serialize<T>(T message, SerializationContext context) where T : class, IMessage<T>, IBufferMessage
    {
        context.SetPayloadLength(message.CalculateSize());
        message.WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    private static T Decode<T>(DeserializationContext context, IPooledDecoder<T> decoder) where T : class
    {
        try { return decoder.Decode(context.PayloadAsReadOnlySequence()); }
        catch (InvalidDataException e) { throw Malformed(e); }
    }
}
