using Cluster.Protos.V1;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// Keeps every node's statistics fresh: asks all nodes' GetStats at once, now and every interval, each with a
/// timeout (both on the gateway's <see cref="TimeProvider"/>), and lets admission place waiting requests after each round. A caller that needs fresh numbers (a request
/// finding no usable node, /cluster/status) joins the round in progress or starts one.
/// </summary>
public sealed class StatsPoller : IAsyncDisposable
{
    private readonly Admission _admission;
    private readonly TimeSpan _interval, _timeout;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private Task? _round;
    private Task? _loop;

    public StatsPoller(Admission admission, IOptions<NodeProbeOptions> options, TimeProvider time, ILogger<StatsPoller> logger)
    {
        _admission = admission;
        _interval = options.Value.StatsInterval;
        _timeout = options.Value.Timeout;
        _time = time;
        _logger = logger;
    }

    /// <summary>The first round, which every node answered or failed: until then a node's absence means nothing.</summary>
    public Task FirstRound { get; private set; } = Task.CompletedTask;

    public void Start()
    {
        FirstRound = RefreshAsync(_stop.Token);
        _loop = LoopAsync(_stop.Token);
    }

    /// <summary>
    /// Completes when a round that started after this call has asked every node: a round already in progress may have
    /// asked some before the caller's moment, so it is awaited and another one joined or started.
    /// </summary>
    public async Task RefreshAsync(CancellationToken ct)
    {
        Task? running;
        lock (_lock) running = _round is { IsCompleted: false } ? _round : null;
        if (running is not null) await running.WaitAsync(ct).ConfigureAwait(false);
        Task round;
        lock (_lock)
        {
            if (_round is null || _round.IsCompleted || ReferenceEquals(_round, running)) _round = RoundAsync();
            round = _round;
        }
        await round.WaitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Asks just <paramref name="nodes"/> (new ones: a round in progress started without them) and lets admission
    /// place waiting requests after.
    /// </summary>
    public async Task AskAsync(IReadOnlyList<AttentionNode> nodes)
    {
        var asks = new Task[nodes.Count];
        for (int i = 0; i < asks.Length; i++) asks[i] = AskNodeAsync(nodes[i]);
        await Task.WhenAll(asks).ConfigureAwait(false);
        _admission.Refresh();
    }

    private async Task LoopAsync(CancellationToken stop)
    {
        try
        {
            while (true)
            {
                await RefreshAsync(stop).ConfigureAwait(false);
                await Task.Delay(_interval, _time, stop).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
    }

    private async Task RoundAsync()
    {
        IReadOnlyList<AttentionNode> nodes = _admission.Nodes;
        var asks = new Task[nodes.Count];
        for (int i = 0; i < asks.Length; i++) asks[i] = AskNodeAsync(nodes[i]);
        await Task.WhenAll(asks).ConfigureAwait(false);
        _admission.Refresh();
    }

    private async Task AskNodeAsync(AttentionNode node)
    {
        bool wasUsable = node.State.Usable;
        // The timeout runs on the gateway's clock (a call deadline would run on the wall clock).
        using var timeout = new CancellationTokenSource(_timeout, _time);
        using var call = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, timeout.Token);
        try
        {
            node.Observe(await node.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: call.Token).ConfigureAwait(false));
        }
        catch (Exception e) when (timeout.IsCancellationRequested && !_stop.IsCancellationRequested && e is OperationCanceledException or RpcException)
        {
            node.ObserveFailure(StatusCode.DeadlineExceeded, $"no answer within {_timeout.TotalSeconds:0.###} s");
        }
        catch (RpcException e) when (!_stop.IsCancellationRequested)
        {
            node.ObserveFailure(e.StatusCode, e.Status.Detail);
        }
        // Stopping: Grpc.Net.Client reports a call cancelled by its token as CANCELLED, other awaits as OperationCanceledException.
        catch (Exception e) when (_stop.IsCancellationRequested && e is OperationCanceledException or RpcException) { return; }
        // Dropped by discovery while this round asked it: its numbers no longer matter.
        catch (ObjectDisposedException) when (node.Retired) { return; }
        NodeState now = node.State;
        if (now.Usable != wasUsable)
        {
            if (now.Usable) _logger.LogInformation("attention node {Node} ({Role}) is usable", node.Endpoint, node.Role.Name());
            else _logger.LogWarning("attention node {Node} ({Role}) is not used: {Error}", node.Endpoint, node.Role.Name(), now.Error);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null) await _loop.ConfigureAwait(false);
        Task? round;
        lock (_lock) round = _round;
        if (round is not null) await round.ConfigureAwait(false);
        _stop.Dispose();
    }
}
