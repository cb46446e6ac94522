using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Cluster.ExpertNode.Control;

/// <summary>When and how skewed: every <see cref="Interval"/>, a rebalance if the expected max/mean rows per expert node is at least <see cref="Threshold"/>.</summary>
public sealed record RebalanceSchedule(TimeSpan Interval, double Threshold = 1.2, long MinimumTokens = 1000)
{
    public void Validate()
    {
        if (Interval < TimeSpan.FromSeconds(1)) throw new ArgumentException($"--rebalance-interval must be at least 1 second (got {Interval.TotalSeconds} s)");
        if (Threshold is < 1 or > 100) throw new ArgumentException($"--rebalance-threshold must be between 1 and 100 (got {Threshold})");
    }
}

/// <summary>
/// The gateway's automatic rebalance (EPLB's periodic mode): on each tick of its schedule it asks the Control service
/// to rebalance if the load since the last plan is skewed enough (<see cref="ControlService.RebalanceIfSkewedAsync"/>),
/// through the same rollout as `cluster experts rebalance`. A failed attempt is logged and tried again on the next tick.
/// </summary>
public sealed class AutoRebalancer(ControlService control, RebalanceSchedule schedule, TimeProvider time, ILogger<AutoRebalancer> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(schedule.Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    if (await control.RebalanceIfSkewedAsync(schedule.Threshold, schedule.MinimumTokens, stopping).ConfigureAwait(false) is { } change)
                        logger.LogInformation("automatic rebalance: plan version {From} -> {To}, expected max/mean rows per expert node {Expected:F2}, {Loaded} slots loaded",
                            change.FromVersion, change.ToVersion, change.ExpectedMaxOverMean, change.LoadedSlots);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Whatever went wrong (a node down, a rollout cut short), the gateway serves on; the next tick tries again.
                    string why = e is Grpc.Core.RpcException r ? $"{r.StatusCode}: {r.Status.Detail}" : e.Message;
                    logger.LogWarning("automatic rebalance failed, trying again in {Seconds} s: {Reason}", schedule.Interval.TotalSeconds, why);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested) { }
    }
}
