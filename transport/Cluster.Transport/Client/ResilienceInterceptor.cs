using Grpc.Core;
using Grpc.Core.Interceptors;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Cluster.Transport;

/// <summary>
/// Polly around the unary calls of one channel: idempotent methods are retried on UNAVAILABLE with jittered
/// exponential backoff; every unary call gets the optional per-attempt timeout and the peer's circuit breaker
/// (one breaker shared by both pipelines, since its state lives in the strategy). Attempts share the call's
/// deadline, so retries never extend it. Streams pass through untouched: a stream that has moved messages cannot
/// be replayed blindly, and its owner (the dispatch streams, the KV receiver) knows how to recover.
/// </summary>
internal sealed class ResilienceInterceptor : Interceptor
{
    private readonly ResiliencePipeline _idempotent;
    private readonly ResiliencePipeline _other;
    private readonly IReadOnlySet<string> _idempotentMethods;

    public ResilienceInterceptor(GrpcResilienceOptions options, IReadOnlySet<string> idempotentMethods)
    {
        _idempotentMethods = idempotentMethods;
        var unavailable = new PredicateBuilder().Handle<RpcException>(e => e.StatusCode == StatusCode.Unavailable);
        ResiliencePipeline? breaker = options.CircuitBreaker
            ? new ResiliencePipelineBuilder().AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                ShouldHandle = unavailable,
                FailureRatio = options.BreakerFailureRatio,
                MinimumThroughput = options.BreakerMinimumThroughput,
                SamplingDuration = options.BreakerSamplingDuration,
                BreakDuration = options.BreakerBreakDuration,
            }).Build()
            : null;
        var idempotent = new ResiliencePipelineBuilder();
        if (options.MaxRetries > 0)
            idempotent.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = unavailable,
                MaxRetryAttempts = options.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = options.MaxRetryDelay,
            });
        _idempotent = Finish(idempotent, breaker, options.AttemptTimeout);
        _other = Finish(new ResiliencePipelineBuilder(), breaker, options.AttemptTimeout);
    }

    private static ResiliencePipeline Finish(ResiliencePipelineBuilder builder, ResiliencePipeline? breaker, TimeSpan? attemptTimeout)
    {
        if (breaker is not null) builder.AddPipeline(breaker);
        if (attemptTimeout is { } t) builder.AddTimeout(t);
        return builder.Build();
    }

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
    {
        var pipeline = _idempotentMethods.Contains(context.Method.FullName) ? _idempotent : _other;
        var attempts = new Attempts<TResponse>();
        var response = RunAsync(pipeline, request, context, continuation, attempts);
        return new AsyncUnaryCall<TResponse>(response, static s => ((Attempts<TResponse>)s).HeadersAsync(), static s => ((Attempts<TResponse>)s).GetStatus(),
            static s => ((Attempts<TResponse>)s).GetTrailers(), static s => ((Attempts<TResponse>)s).Dispose(), attempts);
    }

    private static async Task<TResponse> RunAsync<TRequest, TResponse>(ResiliencePipeline pipeline, TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation,
        Attempts<TResponse> attempts) where TRequest : class where TResponse : class
    {
        CancellationToken callToken = context.Options.CancellationToken;
        try
        {
            return await pipeline.ExecuteAsync(async token =>
            {
                var options = context.Options.WithCancellationToken(token);
                var call = continuation(request, new ClientInterceptorContext<TRequest, TResponse>(context.Method, context.Host, options));
                attempts.Start(call);
                try { return await call.ResponseAsync.ConfigureAwait(false); }
                catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && token.IsCancellationRequested && !callToken.IsCancellationRequested)
                {
                    // Polly recognises its own timeout only by an OperationCanceledException on its token.
                    throw new OperationCanceledException(e.Message, e, token);
                }
            }, callToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (callToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "Call canceled by the client.", e));
        }
        catch (BrokenCircuitException e)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"{context.Method.FullName}: circuit open, the peer keeps failing; retry after {e.RetryAfter}", e));
        }
        catch (TimeoutRejectedException e)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"{context.Method.FullName}: attempt timed out after {e.Timeout}", e));
        }
    }

    /// <summary>The latest attempt, whose headers, status and trailers the caller sees.</summary>
    private sealed class Attempts<TResponse>
    {
        private AsyncUnaryCall<TResponse>? _last;

        public void Start(AsyncUnaryCall<TResponse> call)
        {
            Interlocked.Exchange(ref _last, call)?.Dispose();
        }

        private AsyncUnaryCall<TResponse> Last => Volatile.Read(ref _last) ?? throw new InvalidOperationException("no attempt has started (the circuit is open)");

        public Task<Metadata> HeadersAsync() => Last.ResponseHeadersAsync;
        public Status GetStatus() => Last.GetStatus();
        public Metadata GetTrailers() => Last.GetTrailers();
        public void Dispose() => Volatile.Read(ref _last)?.Dispose();
    }
}
