using Google.Protobuf;

namespace Cluster.Transport;

public enum MethodType
{
    Unary,
    ServerStreaming,
    ClientStreaming,
    DuplexStreaming,
}

/// <summary>
/// One method of a service: its path on the wire ("/package.Service/Method"), its call type and how its
/// messages are parsed. Idempotent methods may be retried by the client's resilience pipeline.
/// </summary>
public sealed class Method<TRequest, TResponse>
    where TRequest : class, IMessage<TRequest>
    where TResponse : class, IMessage<TResponse>
{
    public Method(MethodType type, string serviceName, string name, MessageParser<TRequest> requestParser,
        MessageParser<TResponse> responseParser, bool idempotent = false)
    {
        Type = type;
        ServiceName = serviceName;
        Name = name;
        FullName = "/" + serviceName + "/" + name;
        RequestParser = requestParser;
        ResponseParser = responseParser;
        Idempotent = idempotent;
    }

    public MethodType Type { get; }
    public string ServiceName { get; }
    public string Name { get; }
    public string FullName { get; }
    public MessageParser<TRequest> RequestParser { get; }
    public MessageParser<TResponse> ResponseParser { get; }
    public bool Idempotent { get; }

    public override string ToString() => FullName;
}
