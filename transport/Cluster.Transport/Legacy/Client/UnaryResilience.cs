using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Cluster.Transport.Legacy;

/// <summary>
/// The Polly pipelines a channel runs unary calls through: idempotent methods get retry, every unary call the
/// per-attempt timeout and the endpoint's circuit breaker (one breaker shared by both pipelines).
/// </summary>
internal sealed class UnaryResilience
{
    private readonly ResiliencePipeline _idempotent;
    private readonly ResiliencePipeline _other;

    public UnaryResilience(GrpcResilienceOptions options)
    {
        var unavailable = new PredicateBuilder().Handle<RpcException>(e => e.StatusCode == StatusCode.Unavailable);
        CircuitBreakerStrategyOptions? breaker = options.CircuitBreaker
            ? new CircuitBreakerStrategyOptions
            {
                ShouldHandle = unavailable,
                FailureRatio = options.BreakerFailureRatio,
                MinimumThroughput = options.BreakerMinimumThroughput,
                SamplingDuration = options.BreakerSamplingDuration,
                BreakDuration = options.BreakerBreakDuration,
            }
            : null;
        // A breaker's state lives in the strategy instance, so both pipelines must share one.
        ResiliencePipeline? breakerPipeline = breaker is null ? null : new ResiliencePipelineBuilder().AddCircuitBreaker(breaker).Build();

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
        _idempotent = Finish(idempotent, breakerPipeline, options.AttemptTimeout);
        _other = Finish(new ResiliencePipelineBuilder(), breakerPipeline, options.AttemptTimeout);
    }

    private static ResiliencePipeline Finish(ResiliencePipelineBuilder builder, ResiliencePipeline? breaker, TimeSpan? attemptTimeout)
    {
        if (breaker is not null) builder.AddPipeline(breaker);
        if (attemptTimeout is { } t) builder.AddTimeout(t);
        return builder.Build();
    }

    public async Task<TResult> ExecuteAsync<TState, TResult>(bool idempotent, Func<TState, CancellationToken, Task<TResult>> attempt,
        TState state, CancellationToken cancellationToken)
    {
        var pipeline = idempotent ? _idempotent : _other;
        try
        {
            return await pipeline.ExecuteAsync(static async (s, token) =>
            {
                try { return await s.attempt(s.state, token).ConfigureAwait(false); }
                catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && token.IsCancellationRequested)
                {
                    // Polly recognises its own timeout only by an OperationCanceledException on its token.
                    throw new OperationCanceledException(e.Message, e, token);
                }
            }, (attempt, state), cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "Call canceled by the client."), inner: e);
        }
        catch (BrokenCircuitException e)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "Circuit open: the endpoint keeps failing; retry after " + e.RetryAfter), inner: e);
        }
        catch (TimeoutRejectedException e)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"Attempt timed out after {e.Timeout}"), inner: e);
        }
    }
}
