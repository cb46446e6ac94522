using Cluster.Gateway.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Cluster.Gateway.Tests;

using AttentionNode = Cluster.Gateway.Nodes.AttentionNode;

/// <summary>
/// The gateway's timers run on its <see cref="TimeProvider"/>: with a fake clock, a node's new statistics are read
/// when an interval of that clock has passed (here an hour, which no test waits for), and a settings error stops the
/// start with one line naming the setting.
/// </summary>
public sealed class GatewayClockTests
{
    [Fact]
    public async Task Statistics_are_refreshed_every_interval_of_the_gateways_clock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using ScriptedNode node = await ScriptedNode.StartAsync(TestModel.Served, blocks: 40);
        await using GatewayHost gateway = await GatewayHost.StartAsync(
            // Calls time out after a day of that clock, so advancing it by the interval never cuts one short.
            ClusterFixture.Options([node.Endpoint]) with { StatsInterval = TimeSpan.FromHours(1), HealthTimeout = TimeSpan.FromDays(1) },
            s => s.AddSingleton<TimeProvider>(time));
        AttentionNode seen = Assert.Single(gateway.Router.Nodes);
        await Until.TrueAsync(() => seen.State.Usable, () => seen.State.Error ?? "usable");
        Assert.Equal(40, seen.State.BlocksTotal);

        var stats = node.Stats.Clone();
        stats.BlocksTotal = 30;
        node.Stats = stats;
        // The poller may still be finishing its first rounds rather than waiting: each look moves the clock on an interval.
        await Until.TrueAsync(() =>
        {
            if (seen.State.BlocksTotal == 30) return true;
            time.Advance(TimeSpan.FromHours(1));
            return false;
        }, () => $"the gateway still sees {seen.State.BlocksTotal} blocks");
    }

    [Fact]
    public async Task A_setting_out_of_range_fails_the_start_in_one_line_naming_it()
    {
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => GatewayHost.StartAsync(ClusterFixture.Options(["127.0.0.1:1"]) with { MaxQueue = 0 }));
        Assert.Contains(nameof(AdmissionOptions.MaxInFlightPerNode), e.Message);
        Assert.DoesNotContain('\n', e.Message);
        e = await Assert.ThrowsAsync<OptionsValidationException>(() => GatewayHost.StartAsync(ClusterFixture.Options(["127.0.0.1:1"]) with { StatsInterval = TimeSpan.Zero }));
        Assert.Contains(nameof(NodeProbeOptions.StatsInterval), e.Message);
    }
}
