using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace Cluster.Transport.Legacy;

/// <summary>Maps a service's methods onto endpoints: one POST route per "/package.Service/Method".</summary>
public sealed class ServiceBinder(IEndpointRouteBuilder endpoints, GrpcServerOptions options, ILogger logger)
{
    public void Unary<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryHandler<TRequest, TResponse> handler)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse> =>
        Map(method, MethodType.Unary, handler);

    public void ServerStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingHandler<TRequest, TResponse> handler)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse> =>
        Map(method, MethodType.ServerStreaming, handler);

    public void ClientStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingHandler<TRequest, TResponse> handler)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse> =>
        Map(method, MethodType.ClientStreaming, handler);

    public void DuplexStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingHandler<TRequest, TResponse> handler)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse> =>
        Map(method, MethodType.DuplexStreaming, handler);

    private void Map<TRequest, TResponse>(Method<TRequest, TResponse> method, MethodType expected, Delegate handler)
        where TRequest : class, IMessage<TRequest> where TResponse : class, IMessage<TResponse>
    {
        if (method.Type != expected) throw new ArgumentException($"{method.FullName} is {method.Type}, not {expected}", nameof(method));
        var call = new ServerCallHandler<TRequest, TResponse>(method, handler, options, logger);
        endpoints.MapPost(method.FullName, call.HandleAsync);
    }
}
