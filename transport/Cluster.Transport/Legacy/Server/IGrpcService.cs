namespace Cluster.Transport.Legacy;

/// <summary>A service implementation: it binds each of its methods to a handler.</summary>
public interface IGrpcService
{
    void Bind(ServiceBinder binder);
}

public delegate Task<TResponse> UnaryHandler<TRequest, TResponse>(TRequest request, ServerCallContext context);
public delegate Task ServerStreamingHandler<TRequest, TResponse>(TRequest request, IAsyncStreamWriter<TResponse> responses, ServerCallContext context);
public delegate Task<TResponse> ClientStreamingHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requests, ServerCallContext context);
public delegate Task DuplexStreamingHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requests, IAsyncStreamWriter<TResponse> responses, ServerCallContext context);
