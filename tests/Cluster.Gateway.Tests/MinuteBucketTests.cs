using System.Threading.RateLimiting;
using Cluster.Gateway.Security;
using Microsoft.Extensions.Time.Testing;

namespace Cluster.Gateway.Tests;

/// <summary>The per-minute budget behind both limits, on a fake clock: its rate, its retry hint, and debt.</summary>
public sealed class MinuteBucketTests
{
    private static TimeSpan? Take(MinuteBucket bucket, int count)
    {
        using RateLimitLease lease = bucket.AttemptAcquire(count);
        if (lease.IsAcquired) return null;
        Assert.True(lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan wait));
        return wait;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(60)]
    [InlineData(1000)]
    [InlineData(100_000)]
    public void A_minute_refills_exactly_the_limit_and_no_more(int perMinute)
    {
        var time = new FakeTimeProvider();
        using var bucket = new MinuteBucket(perMinute, time);
        Assert.Null(Take(bucket, perMinute));
        Assert.NotNull(Take(bucket, 1));
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(perMinute / 2, bucket.Available);
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(perMinute, bucket.Available);
        time.Advance(TimeSpan.FromDays(3));
        Assert.Equal(perMinute, bucket.Available);
        Assert.Null(Take(bucket, perMinute));
        Assert.Equal((2, 1), (bucket.GetStatistics()!.TotalSuccessfulLeases, bucket.GetStatistics()!.TotalFailedLeases));
    }

    [Fact]
    public void The_retry_hint_is_exactly_when_the_tokens_are_back()
    {
        var time = new FakeTimeProvider();
        using var bucket = new MinuteBucket(10, time); // one every 6 s
        Assert.Null(Take(bucket, 10));
        time.Advance(TimeSpan.FromSeconds(2));
        TimeSpan wait = Take(bucket, 3)!.Value;
        Assert.Equal(TimeSpan.FromSeconds(16), wait);
        time.Advance(wait - TimeSpan.FromTicks(1));
        Assert.NotNull(Take(bucket, 3));
        time.Advance(TimeSpan.FromTicks(1));
        Assert.Null(Take(bucket, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => bucket.AttemptAcquire(11));
    }

    [Fact]
    public void What_is_charged_beyond_the_bucket_is_owed_and_paid_by_the_refill()
    {
        var time = new FakeTimeProvider();
        using var bucket = new MinuteBucket(60, time); // one a second
        Assert.Null(Take(bucket, 50));
        bucket.Charge(25);
        Assert.Equal(-15, bucket.Available);
        Assert.Equal(TimeSpan.FromSeconds(16), Take(bucket, 1));
        time.Advance(TimeSpan.FromSeconds(15));
        Assert.Equal(0, bucket.Available);
        Assert.NotNull(Take(bucket, 1));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Null(Take(bucket, 1));
    }
}
