using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Cluster.Transport;

/// <summary>Gives a unary call without a deadline the channel's default one (<see cref="GrpcClientOptions.DefaultUnaryDeadline"/>).</summary>
internal sealed class DefaultDeadlineInterceptor(TimeSpan deadline, TimeProvider time) : Interceptor
{
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
    {
        if (context.Options.Deadline is null)
            context = new ClientInterceptorContext<TRequest, TResponse>(context.Method, context.Host,
                context.Options.WithDeadline(time.GetUtcNow().UtcDateTime + deadline));
        return continuation(request, context);
    }
}
