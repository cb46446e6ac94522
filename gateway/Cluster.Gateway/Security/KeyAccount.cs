namespace Cluster.Gateway.Security;

/// <summary>
/// One key's limits and usage. Requests per minute are taken one per generation request; tokens per minute are
/// charged the prompt at admission (which needs that many left, after any debt) and the completion as it streams, so
/// a long answer that overruns the budget is finished and its overrun delays the key's next requests.
/// </summary>
public sealed class KeyAccount : IDisposable
{
    private readonly MinuteBucket? _requests, _tokens;

    public KeyAccount(ApiKey key, TimeProvider time)
    {
        Key = key;
        if (key.RequestsPerMinute is { } rpm) _requests = new MinuteBucket(rpm, time);
        if (key.TokensPerMinute is { } tpm) _tokens = new MinuteBucket(tpm, time);
    }

    public ApiKey Key { get; }
    public string Name => Key.Name;
    public KeyUsage Usage { get; } = new();

    /// <summary>Admits a generation request of <paramref name="promptTokens"/>, or throws the 429 saying when to retry.</summary>
    /// <exception cref="GatewayException">Of kind <see cref="GatewayErrorKind.RateLimited"/>.</exception>
    public void Admit(int promptTokens)
    {
        if (_requests is not null && RetryAfter(_requests, 1) is { } wait)
            throw Limited($"key '{Name}' has used its {_requests.Limit} requests per minute", wait);
        if (_tokens is not null)
        {
            // Never: retrying cannot help, so no Retry-After.
            if (promptTokens > _tokens.Limit)
                throw Limited($"the prompt's {promptTokens} tokens are more than key '{Name}''s {_tokens.Limit} tokens per minute", null);
            if (RetryAfter(_tokens, promptTokens) is { } later)
                throw Limited($"key '{Name}' has used its {_tokens.Limit} tokens per minute (the prompt needs {promptTokens})", later);
        }
        Usage.AddRequest();
    }

    /// <summary>Null when the bucket gave <paramref name="count"/>; else how long until it can.</summary>
    private static TimeSpan? RetryAfter(MinuteBucket bucket, int count)
    {
        using System.Threading.RateLimiting.RateLimitLease lease = bucket.AttemptAcquire(count);
        if (lease.IsAcquired) return null;
        return lease.TryGetMetadata(System.Threading.RateLimiting.MetadataName.RetryAfter, out TimeSpan wait) ? wait : bucket.ReplenishmentPeriod;
    }

    /// <summary>Completion tokens as they stream (not refused: the request was admitted).</summary>
    public void ChargeCompletion(int tokens) => _tokens?.Charge(tokens);

    private static GatewayException Limited(string message, TimeSpan? retryAfter) =>
        new(GatewayErrorKind.RateLimited, retryAfter is { } wait ? $"{message}; retry in {RetrySeconds(wait)} s" : message, code: "rate_limit_exceeded")
        {
            RetryAfter = retryAfter,
        };

    /// <summary>Whole seconds, rounded up: Retry-After's unit.</summary>
    public static long RetrySeconds(TimeSpan wait) => Math.Max(1, (long)Math.Ceiling(wait.TotalSeconds));

    public void Dispose()
    {
        _requests?.Dispose();
        _tokens?.Dispose();
    }
}
