using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Cluster.Transport;

/// <summary>Sends a generated client's calls of the tensor methods through their pooled twins (<see cref="PooledMethods"/>).</summary>
internal sealed class PooledMethodInterceptor : Interceptor
{
    public static readonly PooledMethodInterceptor Instance = new();

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, Pooled(context));

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(
        ClientInterceptorContext<TRequest, TResponse> context, AsyncDuplexStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(Pooled(context));

    private static ClientInterceptorContext<TRequest, TResponse> Pooled<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context)
        where TRequest : class where TResponse : class
    {
        var method = PooledMethods.For(context.Method);
        return ReferenceEquals(method, context.Method) ? context : new ClientInterceptorContext<TRequest, TResponse>(method, context.Host, context.Options);
    }
}
