namespace Cluster.Transport;

/// <summary>Resilience of unary calls on one channel (one peer, so the circuit breaker is per peer).</summary>
public sealed class GrpcResilienceOptions
{
    /// <summary>Retries after the first attempt, for idempotent methods and only on UNAVAILABLE; 0 turns retry off.</summary>
    public int MaxRetries { get; set; } = 3;
    /// <summary>The first backoff; later ones grow exponentially, with jitter, up to MaxRetryDelay.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>A limit on each attempt (DEADLINE_EXCEEDED when hit); null: only the call's own deadline applies.</summary>
    public TimeSpan? AttemptTimeout { get; set; }
    /// <summary>Whether a circuit breaker fails calls fast with UNAVAILABLE while the peer keeps failing.</summary>
    public bool CircuitBreaker { get; set; } = true;
    /// <summary>The share of UNAVAILABLE outcomes within the sampling window that opens the circuit.</summary>
    public double BreakerFailureRatio { get; set; } = 0.5;
    public int BreakerMinimumThroughput { get; set; } = 20;
    public TimeSpan BreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan BreakerBreakDuration { get; set; } = TimeSpan.FromSeconds(5);
}
