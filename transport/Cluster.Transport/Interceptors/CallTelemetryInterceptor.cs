using System.Diagnostics;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;

namespace Cluster.Transport;

/// <summary>
/// Every call a role serves, of every kind: one log line at Debug (method, status, milliseconds, peer) and its
/// count and latency in <see cref="CallMetrics"/>. The status is the one the client sees: a thrown RpcException's,
/// CANCELLED when the client went away, UNKNOWN for any other exception, else what the handler set (OK by default).
/// </summary>
public sealed class CallTelemetryInterceptor(CallMetrics metrics, ILogger<CallTelemetryInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            var response = await continuation(request, context).ConfigureAwait(false);
            Completed(context, start, null);
            return response;
        }
        catch (Exception e)
        {
            Completed(context, start, e);
            throw;
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            var response = await continuation(requestStream, context).ConfigureAwait(false);
            Completed(context, start, null);
            return response;
        }
        catch (Exception e)
        {
            Completed(context, start, e);
            throw;
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
            Completed(context, start, null);
        }
        catch (Exception e)
        {
            Completed(context, start, e);
            throw;
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
            Completed(context, start, null);
        }
        catch (Exception e)
        {
            Completed(context, start, e);
            throw;
        }
    }

    private void Completed(ServerCallContext context, long start, Exception? error)
    {
        StatusCode code = error switch
        {
            null => context.Status.StatusCode,
            RpcException rpc => rpc.StatusCode,
            _ when context.CancellationToken.IsCancellationRequested => context.Deadline <= DateTime.UtcNow ? StatusCode.DeadlineExceeded : StatusCode.Cancelled,
            _ => StatusCode.Unknown,
        };
        TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
        metrics.Record(context.Method, code, elapsed);
        if (logger.IsEnabled(LogLevel.Debug))
            logger.LogDebug("{Method} {Code} {Ms:F1} ms from {Peer}", context.Method, code, elapsed.TotalMilliseconds, context.Peer);
    }
}
