using System.Threading.RateLimiting;

namespace Cluster.Gateway.Security;

/// <summary>
/// A budget of N per minute as a System.Threading.RateLimiting limiter: a token bucket N deep that refills
/// continuously at N a minute, read from the gateway's <see cref="TimeProvider"/>. The library's own buckets read the
/// Stopwatch even when replenished by hand, so a test's fake clock could not move them. Beside acquiring, usage can
/// be charged after the fact (<see cref="Charge"/>): what the bucket lacks is owed, and the bucket fills from below
/// zero. Amounts are kept in tokens × ticks-per-minute, so refills are exact integers whatever N.
/// </summary>
public sealed class MinuteBucket : ReplenishingRateLimiter
{
    private static readonly RateLimitLease s_acquired = new Lease(true, null);

    private readonly TimeProvider _time;
    private readonly long _full;
    private readonly Lock _lock = new();
    private long _units, _last, _successes, _failures;

    public MinuteBucket(int perMinute, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(perMinute, 1);
        Limit = perMinute;
        _time = time;
        _full = perMinute * TimeSpan.TicksPerMinute;
        _units = _full;
        _last = time.GetTimestamp();
    }

    public int Limit { get; }

    /// <summary>Whole tokens there to take now: negative while more is owed than has come back.</summary>
    public long Available
    {
        get
        {
            lock (_lock)
            {
                Refill();
                return _units >= 0 ? _units / TimeSpan.TicksPerMinute : -((-_units + TimeSpan.TicksPerMinute - 1) / TimeSpan.TicksPerMinute);
            }
        }
    }

    /// <summary>It refills itself from the clock on every look; there is nothing to call.</summary>
    public override bool IsAutoReplenishing => true;
    /// <summary>How long one token takes to come back.</summary>
    public override TimeSpan ReplenishmentPeriod => TimeSpan.FromTicks(Math.Max(1, TimeSpan.TicksPerMinute / Limit));
    public override bool TryReplenish() => false;

    public override TimeSpan? IdleDuration
    {
        get
        {
            lock (_lock)
            {
                Refill();
                return _units == _full ? _time.GetElapsedTime(_last) : null;
            }
        }
    }

    public override RateLimiterStatistics? GetStatistics()
    {
        lock (_lock)
        {
            Refill();
            return new RateLimiterStatistics
            {
                CurrentAvailablePermits = Math.Max(0, _units / TimeSpan.TicksPerMinute),
                TotalSuccessfulLeases = _successes,
                TotalFailedLeases = _failures,
            };
        }
    }

    /// <summary>
    /// <paramref name="permitCount"/> tokens when the bucket holds them; else a failed lease whose RetryAfter is
    /// when it will. More than the bucket ever holds throws, as the library's limiters do.
    /// </summary>
    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(permitCount, Limit);
        lock (_lock)
        {
            Refill();
            long need = permitCount * TimeSpan.TicksPerMinute;
            if (_units >= need)
            {
                _units -= need;
                _successes++;
                return s_acquired;
            }
            _failures++;
            long ticks = (need - _units + Limit - 1) / Limit;
            return new Lease(false, TimeSpan.FromTicks(ticks));
        }
    }

    /// <summary>No queue: a request the budget cannot take now is refused with its retry time, never held.</summary>
    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AttemptAcquireCore(permitCount));

    /// <summary>Takes <paramref name="count"/> whatever the bucket holds: what it lacks is owed.</summary>
    public void Charge(int count)
    {
        if (count <= 0) return;
        lock (_lock)
        {
            Refill();
            _units -= count * TimeSpan.TicksPerMinute;
        }
    }

    private void Refill()
    {
        long now = _time.GetTimestamp();
        long elapsed = _time.GetElapsedTime(_last, now).Ticks;
        _last = now;
        if (elapsed <= 0 || _units >= _full) return;
        // Compared before multiplying: after a long idle, elapsed × Limit would overflow.
        long missing = _full - _units;
        _units = elapsed >= (missing + Limit - 1) / Limit ? _full : _units + elapsed * Limit;
    }

    private sealed class Lease(bool acquired, TimeSpan? retryAfter) : RateLimitLease
    {
        public override bool IsAcquired => acquired;
        public override IEnumerable<string> MetadataNames => retryAfter is null ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = retryAfter;
            return retryAfter is not null && metadataName == MetadataName.RetryAfter.Name;
        }
    }
}
