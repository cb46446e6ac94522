using Cluster.Engine.Config;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.ExpertNode.Client;

/// <summary>
/// An attention node's side of dispatch/combine: one persistent Dispatch stream per expert node of the plan,
/// shared by the <see cref="RemoteExperts"/> of every MoE layer, and which nodes are down. A node is marked down when
/// its health watch says so, its stream breaks or it answers too late; rows then go to live replicas of its experts,
/// and the node is probed (GetInfo, health, an empty dispatch) until it is back.
/// </summary>
public sealed class ExpertStreams : IDisposable, IAsyncDisposable
{
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(200);
    private static readonly Grpc.Health.V1.HealthCheckRequest HealthOfService = new() { Service = Protos.V1.ExpertService.Descriptor.FullName };
    private readonly ExpertStream[] _streams;
    private readonly string?[] _down;
    private readonly double[] _secondsPerRow;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _closing = new();
    private long _batch;

    private ExpertStreams(PlacementPlan plan, ModelConfig config, ExpertStream[] streams, ILogger logger)
    {
        Plan = plan;
        Config = config;
        _streams = streams;
        _logger = logger;
        _down = new string?[streams.Length];
        _secondsPerRow = new double[streams.Length];
    }

    public PlacementPlan Plan { get; }
    public ModelConfig Config { get; }
    public IReadOnlyList<ExpertNodeAddress> Nodes => Plan.Nodes;

    /// <summary>
    /// Waits until every expert node of the plan answers GetInfo with the plan's version (nodes may still be loading),
    /// then opens one Dispatch stream to each. Fails with the node's name when one is still unreachable after
    /// <paramref name="wait"/>, or when a node holds another plan.
    /// </summary>
    public static async Task<ExpertStreams> ConnectAsync(PlacementPlan plan, ModelConfig config, TimeSpan wait,
        TimeSpan? exchangeTimeout = null, ILogger? logger = null, CancellationToken cancel = default)
    {
        plan.CheckFits(config);
        var streams = new ExpertStream[plan.Nodes.Count];
        try
        {
            DateTime until = DateTime.UtcNow + wait;
            for (int i = 0; i < streams.Length; i++)
            {
                ExpertNodeAddress node = plan.Nodes[i];
                var channel = PeerChannel.ForAddress(node.Uri, new GrpcClientOptions { MaxReceiveMessageSize = DispatchLimits.MaxFrameBytes });
                streams[i] = new ExpertStream(node, channel, exchangeTimeout ?? TimeSpan.FromSeconds(60));
                await WaitReadyAsync(node, streams[i].Client, plan.Version, until, cancel).ConfigureAwait(false);
                streams[i].Open();
            }
            var connected = new ExpertStreams(plan, config, streams, logger ?? NullLogger.Instance);
            for (int i = 0; i < streams.Length; i++) _ = connected.WatchAsync(i);
            return connected;
        }
        catch
        {
            foreach (ExpertStream? s in streams) s?.Dispose();
            throw;
        }
    }

    private static async Task WaitReadyAsync(ExpertNodeAddress node, Protos.V1.ExpertService.ExpertServiceClient client, ulong version, DateTime until, CancellationToken cancel)
    {
        while (true)
        {
            string problem;
            try
            {
                ExpertNodeInfo info = await client.GetInfoAsync(new GetExpertInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancel).ConfigureAwait(false);
                if (info.NodeId != node.Id)
                    throw new ExpertNodeException(node.Id, $"{node.Endpoint} is expert node '{info.NodeId}', not '{node.Id}' as the plan says");
                if (info.PlanVersion != version)
                    throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) holds plan version {info.PlanVersion}, not {version}");
                return;
            }
            catch (RpcException e) { problem = e.Status.Detail; }
            cancel.ThrowIfCancellationRequested();
            if (DateTime.UtcNow >= until) throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) is not reachable: {problem}");
            await Task.Delay(100, cancel).ConfigureAwait(false);
        }
    }

    internal int NodeCount => _streams.Length;

    /// <summary>Why <paramref name="node"/> is down, or null while it is up.</summary>
    public string? DownReason(int node) => Volatile.Read(ref _down[node]);

    internal bool IsDown(int node) => Volatile.Read(ref _down[node]) is not null;

    /// <summary>
    /// Takes the node out of routing (failing its exchange in flight, if any) and probes it until it is back.
    /// Logs which experts are left without a live replica.
    /// </summary>
    internal void MarkDown(int node, string why)
    {
        if (Interlocked.CompareExchange(ref _down[node], why, null) is not null) return;
        _streams[node].Abort(why);
        ExpertNodeAddress address = Plan.Nodes[node];
        string uncovered = Uncovered();
        _logger.LogWarning("expert node {Node} ({Endpoint}) is down: {Why}; {Uncovered}", address.Id, address.Endpoint, why,
            uncovered.Length == 0 ? "every expert has a live replica" : "without a live replica: " + uncovered);
        _ = ProbeAsync(node);
    }

    /// <summary>"layer L: e1 e2; ..." for the experts whose every replica is on a down node.</summary>
    public string Uncovered()
    {
        var parts = new List<string>();
        foreach (LayerPlacement layer in Plan.Layers)
        {
            var missing = new List<int>();
            for (int e = 0; e < layer.Experts; e++)
            {
                bool live = false;
                foreach (ExpertReplica r in layer.ReplicasOf(e)) live |= !IsDown(r.Node);
                if (!live) missing.Add(e);
            }
            if (missing.Count > 0) parts.Add($"layer {layer.Layer}: {string.Join(' ', missing)}");
        }
        return string.Join("; ", parts);
    }

    /// <summary>
    /// Follows the node's health (grpc.health.v1 Watch of its ExpertService) while it is up, so that a node that
    /// stops, turns NOT_SERVING at shutdown or vanishes is marked down at once, before a step has to meet it.
    /// </summary>
    private async Task WatchAsync(int node)
    {
        while (!_closing.IsCancellationRequested)
        {
            try
            {
                if (IsDown(node))
                {
                    // The probe brings it back; the watch resumes then.
                    await Task.Delay(ProbeInterval, _closing.Token).ConfigureAwait(false);
                    continue;
                }
                using var watch = _streams[node].Health.Watch(HealthOfService, cancellationToken: _closing.Token);
                string? why = null;
                while (why is null && await watch.ResponseStream.MoveNext(_closing.Token).ConfigureAwait(false))
                {
                    var status = watch.ResponseStream.Current.Status;
                    if (status != Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving) why = $"its health is {status}";
                }
                MarkDown(node, why ?? "its health watch ended");
            }
            catch (RpcException e) when (!_closing.IsCancellationRequested) { MarkDown(node, $"its health watch failed: {e.Status.Detail}"); }
            catch (OperationCanceledException) { return; }
            catch (RpcException) { return; }
        }
    }

    private async Task ProbeAsync(int node)
    {
        ExpertNodeAddress address = Plan.Nodes[node];
        while (!_closing.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(ProbeInterval, _closing.Token).ConfigureAwait(false);
                ExpertNodeInfo info = await _streams[node].Client.GetInfoAsync(new GetExpertInfoRequest(),
                    deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: _closing.Token).ConfigureAwait(false);
                if (info.PlanVersion != Plan.Version || info.NodeId != address.Id) continue;
                // Back only once it says so too, or the health watch would take it down again at once.
                var health = await _streams[node].Health.CheckAsync(HealthOfService,
                    deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: _closing.Token).ConfigureAwait(false);
                if (health.Status != Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving) continue;
                if (!await AnswersDispatchAsync(node).ConfigureAwait(false)) continue;
                Volatile.Write(ref _down[node], null);
                _logger.LogWarning("expert node {Node} ({Endpoint}) is back", address.Id, address.Endpoint);
                return;
            }
            catch (RpcException) { }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <summary>
    /// Whether the node answers a frame of no rows on a dispatch stream of its own within a second: a node whose
    /// GetInfo works but whose dispatch hangs must stay down, or every step would wait for it again.
    /// </summary>
    private async Task<bool> AnswersDispatchAsync(int node)
    {
        using var call = _streams[node].Client.Dispatch(deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: _closing.Token);
        await call.RequestStream.WriteAsync(new DispatchFrame
        {
            BatchId = 0, Layer = (uint)Plan.Layers[0].Layer, Rows = 0, Hidden = (uint)Config.HiddenSize, Dtype = TensorDType.Bf16, PlanVersion = Plan.Version,
        }).ConfigureAwait(false);
        if (!await call.ResponseStream.MoveNext(_closing.Token).ConfigureAwait(false)) return false;
        CombineFrame reply = call.ResponseStream.Current;
        bool ok = reply.Error.Length == 0;
        CombineFrameDecoder.Instance.Release(reply);
        await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        return ok;
    }

    internal ulong NextBatchId() => (ulong)Interlocked.Increment(ref _batch);

    internal async Task<CombineFrame> ExchangeAsync(int node, DispatchFrame frame)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        CombineFrame reply = await _streams[node].ExchangeAsync(frame).ConfigureAwait(false);
        Observe(node, (int)frame.Rows, System.Diagnostics.Stopwatch.GetElapsedTime(start));
        return reply;
    }

    /// <summary>
    /// How long to wait for <paramref name="rows"/> rows from <paramref name="node"/> before giving up on it when
    /// replicas can take over: <see cref="FailoverFloor"/> plus <see cref="FailoverMultiplier"/> times what the node
    /// has taken per row (an average that follows its recent exchanges); the first exchanges, with nothing measured,
    /// get <see cref="FailoverFirst"/>.
    /// </summary>
    internal TimeSpan GiveUpAfter(int node, int rows)
    {
        double perRow = Volatile.Read(ref _secondsPerRow[node]);
        if (perRow == 0) return FailoverFirst;
        return FailoverFloor + TimeSpan.FromSeconds(FailoverMultiplier * perRow * Math.Max(1, rows));
    }

    /// <summary>
    /// The least time a node may take to answer before its rows go to replicas (default 0.5 s, so a silent node is
    /// routed around within a second; a node that was only slow is probed back within 200 ms).
    /// </summary>
    public TimeSpan FailoverFloor { get; set; } = TimeSpan.FromMilliseconds(500);
    public double FailoverMultiplier { get; set; } = 8;
    /// <summary>The patience before anything is measured (a node's first frames also warm it up).</summary>
    public TimeSpan FailoverFirst { get; set; } = TimeSpan.FromSeconds(30);

    private void Observe(int node, int rows, TimeSpan elapsed)
    {
        double perRow = elapsed.TotalSeconds / Math.Max(1, rows);
        double old = Volatile.Read(ref _secondsPerRow[node]);
        // One exchange at a time per node (its stream serializes them), so read-modify-write needs no lock.
        Volatile.Write(ref _secondsPerRow[node], old == 0 ? perRow : 0.8 * old + 0.2 * perRow);
    }

    /// <summary>Every expert node's own view: its slots and the tokens each served.</summary>
    public async Task<ExpertNodeInfo[]> GetInfoAsync(CancellationToken cancel = default)
    {
        var calls = new Task<ExpertNodeInfo>[_streams.Length];
        for (int i = 0; i < calls.Length; i++)
            calls[i] = _streams[i].Client.GetInfoAsync(new GetExpertInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancel).ResponseAsync;
        return await Task.WhenAll(calls).ConfigureAwait(false);
    }

    /// <summary>The routed experts of <paramref name="layer"/> reached through these streams.</summary>
    public RemoteExperts ForLayer(int layer, TensorDType dispatch) => new(this, layer, dispatch);

    public void Dispose()
    {
        _closing.Cancel();
        foreach (ExpertStream s in _streams) s.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
