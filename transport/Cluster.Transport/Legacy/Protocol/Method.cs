using Google.Protobuf;

namespace Cluster.Transport.Legacy;

public enum MethodType
{
    Unary,
    ServerStreaming,
    ClientStreaming,
    DuplexStreaming,
}

/// <summary>
/// One method of a service: its path on the wire ("/package.Service/Method"), its call type and how its
/// messages are parsed. Idempotent methods may be retried by the client's resilience pipeline. A method with a
/// pooled decoder for a direction reads that direction's messages with it: each is valid until the next read.
/// </summary>
public sealed class Method<TRequest, TResponse>
    where TRequest : class, IMessage<TRequest>
    where TResponse : class, IMessage<TResponse>
{
    public Method(MethodType type, string serviceName, string name, MessageParser<TRequest> requestParser,
        MessageParser<TResponse> responseParser, bool idempotent = false,
        IPooledDecoder<TRequest>? requestDecoder = null, IPooledDecoder<TResponse>? responseDecoder = null)
    {
        Type = type;
        ServiceName = serviceName;
        Name = name;
        FullName = "/" + serviceName + "/" + name;
        RequestParser = requestParser;
        ResponseParser = responseParser;
        Idempotent = idempotent;
        RequestDecoder = requestDecoder;
        ResponseDecoder = responseDecoder;
    }

    public MethodType Type { get; }
    public string ServiceName { get; }
    public string Name { get; }
    public string FullName { get; }
    public MessageParser<TRequest> RequestParser { get; }
    public MessageParser<TResponse> ResponseParser { get; }
    public bool Idempotent { get; }
    public IPooledDecoder<TRequest>? RequestDecoder { get; }
    public IPooledDecoder<TResponse>? ResponseDecoder { get; }

    public override string ToString() => FullName;
}
