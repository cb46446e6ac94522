using Cluster.Engine.Config;
using Cluster.ExpertNode.Control;
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
/// and the node is probed (GetInfo, health, an empty dispatch) until it is back. The plan can change while serving
/// (<see cref="SwitchAsync"/>): the next plan takes over between two steps, with streams opened to nodes it adds and
/// closed to nodes it leaves out.
/// </summary>
public sealed class ExpertStreams : IPlanSwitch, IDisposable, IAsyncDisposable
{
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(200);
    private static readonly Grpc.Health.V1.HealthCheckRequest HealthOfService = new() { Service = Protos.V1.ExpertService.Descriptor.FullName };
    private readonly TimeSpan _exchangeTimeout;
    private readonly ClusterToken? _token;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _closing = new();
    private readonly object _step = new();
    private readonly SemaphoreSlim _switching = new(1, 1);
    // Plan and streams change together, between steps, so a step sees one pair throughout.
    private PlacementPlan _plan;
    private ExpertStream[] _streams;
    // The micro-batches (a bit each) of the step in progress; a staged plan waits until none is.
    private int _activeSlots;
    private (PlacementPlan Plan, ExpertStream[] Streams, TaskCompletionSource Done)? _staged;
    private long _batch;

    private ExpertStreams(PlacementPlan plan, ModelConfig config, ExpertStream[] streams, TimeSpan exchangeTimeout, ILogger logger, ClusterToken? token)
    {
        _plan = plan;
        Config = config;
        _streams = streams;
        _exchangeTimeout = exchangeTimeout;
        _token = token;
        _logger = logger;
    }

    /// <summary>Round trips to each expert node, for the attention node's /metrics.</summary>
    public DispatchMetrics Metrics { get; } = new();

    /// <summary>The plan steps route by now.</summary>
    public PlacementPlan Plan => Volatile.Read(ref _plan);
    public ModelConfig Config { get; }
    public IReadOnlyList<ExpertNodeAddress> Nodes => Plan.Nodes;

    /// <summary>
    /// Waits until every expert node of the plan answers GetInfo with the plan's version (nodes may still be loading),
    /// then opens one Dispatch stream to each. Fails with the node's name when one is still unreachable after
    /// <paramref name="wait"/>, or when a node does not serve the plan's version. Every call carries
    /// <paramref name="token"/>, the cluster's credential, when the expert nodes ask for one.
    /// </summary>
    public static async Task<ExpertStreams> ConnectAsync(PlacementPlan plan, ModelConfig config, TimeSpan wait,
        TimeSpan? exchangeTimeout = null, ILogger? logger = null, ClusterToken? token = null, CancellationToken cancel = default)
    {
        plan.CheckFits(config);
        var connected = new ExpertStreams(plan, config, [], exchangeTimeout ?? TimeSpan.FromSeconds(60), logger ?? NullLogger.Instance, token);
        try
        {
            ExpertStream[] streams = await connected.OpenAsync(plan, [], DateTime.UtcNow + wait, cancel).ConfigureAwait(false);
            lock (connected._step) connected.Apply(plan, streams);
            // A switch to the plan in use returns at once; made here, it compiles the switch's code before the first
            // live change, which would otherwise compile it on the cores the steps share (see ControlPathWarmup).
            await connected.SwitchAsync(plan, wait, cancel: cancel).ConfigureAwait(false);
            return connected;
        }
        catch
        {
            connected.Dispose();
            throw;
        }
    }

    /// <summary>The streams for <paramref name="plan"/>'s nodes in its order: those of <paramref name="reuse"/> at the same id and endpoint, new ones (ready, serving the plan's version) for the rest.</summary>
    private async Task<ExpertStream[]> OpenAsync(PlacementPlan plan, ExpertStream[] reuse, DateTime until, CancellationToken cancel)
    {
        var streams = new ExpertStream[plan.Nodes.Count];
        try
        {
            for (int i = 0; i < streams.Length; i++)
            {
                ExpertNodeAddress node = plan.Nodes[i];
                ExpertStream? same = Array.Find(reuse, s => s.Node == node);
                if (same is not null)
                {
                    streams[i] = same;
                    continue;
                }
                var channel = PeerChannel.ForAddress(node.Uri, new GrpcClientOptions { MaxReceiveMessageSize = DispatchLimits.MaxFrameBytes, ClusterToken = _token });
                streams[i] = new ExpertStream(node, channel, _exchangeTimeout, Metrics.For(node.Id), _closing.Token);
                await WaitReadyAsync(node, streams[i].Client, plan.Version, until, cancel).ConfigureAwait(false);
                streams[i].Open();
            }
            return streams;
        }
        catch
        {
            foreach (ExpertStream? s in streams)
                if (s is not null && Array.IndexOf(reuse, s) < 0) s.Dispose();
            throw;
        }
    }

    private static bool Serves(ExpertNodeInfo info, ulong version) => info.PlanVersion == version || info.HeldVersions.Contains(version);

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
                if (!Serves(info, version))
                    throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) holds plan version {string.Join(", ", info.HeldVersions.DefaultIfEmpty(info.PlanVersion))}, not {version}");
                return;
            }
            // A node that refuses this node's credential will not change its mind: say so at once.
            catch (RpcException e) when (e.StatusCode == StatusCode.Unauthenticated)
            {
                throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) refused this node: {e.Status.Detail} (are both started with the same cluster token?)");
            }
            catch (RpcException e) { problem = e.Status.Detail; }
            cancel.ThrowIfCancellationRequested();
            if (DateTime.UtcNow >= until) throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) is not reachable: {problem}");
            await Task.Delay(100, cancel).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Routes by <paramref name="next"/> from the next step on (at once when no step is running) and returns when
    /// no step uses the old plan any more, so its slots may be dropped. Every node of <paramref name="next"/> must
    /// already serve its version (prepared); streams open to the nodes it adds and close to the nodes it leaves out.
    /// A plan older than the one in use is refused unless <paramref name="revert"/> (a rollout going back after
    /// another attention node failed to switch). A switch cancelled before a step applied it never takes over.
    /// </summary>
    public async Task SwitchAsync(PlacementPlan next, TimeSpan wait, bool revert = false, CancellationToken cancel = default)
    {
        next.CheckFits(Config, $"plan version {next.Version}");
        await _switching.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            PlacementPlan current = Plan;
            if (next.Version == current.Version) return;
            if (next.Version < current.Version && !revert)
                throw new ArgumentException($"plan version {next.Version} is older than the one in use, {current.Version}");
            ExpertStream[] streams = await OpenAsync(next, Volatile.Read(ref _streams), DateTime.UtcNow + wait, cancel).ConfigureAwait(false);
            TaskCompletionSource staged;
            lock (_step)
            {
                if (_activeSlots == 0)
                {
                    Apply(next, streams);
                    return;
                }
                staged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _staged = (next, streams, staged);
            }
            try { await staged.Task.WaitAsync(cancel).ConfigureAwait(false); }
            catch (OperationCanceledException)
            {
                if (!Withdraw(staged)) throw;
            }
        }
        finally { _switching.Release(); }
    }

    /// <summary>
    /// For a switch whose caller gave up waiting: takes it back unless a step applied it meanwhile; returns whether
    /// one did. A plan that took over later, unknown to the caller, could be one its expert nodes were told to
    /// abandon since.
    /// </summary>
    private bool Withdraw(TaskCompletionSource done)
    {
        ExpertStream[] opened;
        lock (_step)
        {
            if (_staged is not { } staged || staged.Done != done) return done.Task.IsCompletedSuccessfully;
            _staged = null;
            opened = staged.Streams;
        }
        ExpertStream[] kept = Volatile.Read(ref _streams);
        foreach (ExpertStream s in opened)
            if (Array.IndexOf(kept, s) < 0) s.Dispose();
        return false;
    }

    string IPlanSwitch.Name => "in this process";

    Task IPlanSwitch.SwitchAsync(PlacementPlan plan, bool revert, CancellationToken cancel) => SwitchAsync(plan, TimeSpan.FromSeconds(30), revert, cancel);

    /// <summary>Called under <see cref="_step"/>: the new pair takes over; streams no node of the plan uses are closed.</summary>
    private void Apply(PlacementPlan next, ExpertStream[] streams)
    {
        ExpertStream[] old = _streams;
        Volatile.Write(ref _plan, next);
        Volatile.Write(ref _streams, streams);
        foreach (ExpertStream s in streams)
            if (Array.IndexOf(old, s) < 0) _ = WatchAsync(s);
        foreach (ExpertStream s in old)
            if (Array.IndexOf(streams, s) < 0) s.Dispose();
        _logger.LogInformation("routing by plan version {Version} ({Nodes} expert nodes)", next.Version, streams.Length);
    }

    /// <summary>A step's micro-batch starts (its first MoE layer): when it is the step's first, a staged plan takes over now.</summary>
    internal void BeginStep(int slot = 0)
    {
        lock (_step)
        {
            bool starts = _activeSlots == 0;
            _activeSlots |= 1 << slot;
            if (!starts || _staged is not { } staged) return;
            _staged = null;
            Apply(staged.Plan, staged.Streams);
            staged.Done.SetResult();
        }
    }

    /// <summary>A step's micro-batch ended (its last MoE layer, or a failure in any); once all have, a plan switch need not wait.</summary>
    internal void EndStep(int slot = 0)
    {
        lock (_step)
        {
            _activeSlots &= ~(1 << slot);
            if (_activeSlots != 0 || _staged is not { } staged) return;
            _staged = null;
            Apply(staged.Plan, staged.Streams);
            staged.Done.SetResult();
        }
    }

    internal int NodeCount => Volatile.Read(ref _streams).Length;

    /// <summary>Why <paramref name="node"/> (an index into <see cref="Plan"/>'s nodes) is down, or null while it is up.</summary>
    public string? DownReason(int node) => Volatile.Read(ref _streams)[node].DownReason;

    internal bool IsDown(int node) => Volatile.Read(ref _streams)[node].DownReason is not null;

    /// <summary>
    /// Takes the node out of routing (failing its exchange in flight, if any) and probes it until it is back.
    /// Logs which experts are left without a live replica.
    /// </summary>
    internal void MarkDown(int node, string why) => MarkDown(Volatile.Read(ref _streams)[node], why);

    private void MarkDown(ExpertStream stream, string why)
    {
        if (!stream.MarkDown(why)) return;
        stream.Abort(why);
        string uncovered = Uncovered();
        _logger.LogWarning("expert node {Node} ({Endpoint}) is down: {Why}; {Uncovered}", stream.Node.Id, stream.Node.Endpoint, why,
            uncovered.Length == 0 ? "every expert has a live replica" : "without a live replica: " + uncovered);
        _ = ProbeAsync(stream);
    }

    /// <summary>"layer L: e1 e2; ..." for the experts whose every replica is on a down node.</summary>
    public string Uncovered()
    {
        PlacementPlan plan = Plan;
        ExpertStream[] streams = Volatile.Read(ref _streams);
        var parts = new List<string>();
        foreach (LayerPlacement layer in plan.Layers)
        {
            var missing = new List<int>();
            for (int e = 0; e < layer.Experts; e++)
            {
                bool live = false;
                foreach (ExpertReplica r in layer.ReplicasOf(e)) live |= streams[r.Node].DownReason is null;
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
    private async Task WatchAsync(ExpertStream stream)
    {
        CancellationToken retired = stream.Retired;
        while (!retired.IsCancellationRequested)
        {
            try
            {
                if (stream.DownReason is not null)
                {
                    // The probe brings it back; the watch resumes then.
                    await Task.Delay(ProbeInterval, retired).ConfigureAwait(false);
                    continue;
                }
                using var watch = stream.Health.Watch(HealthOfService, cancellationToken: retired);
                string? why = null;
                while (why is null && await watch.ResponseStream.MoveNext(retired).ConfigureAwait(false))
                {
                    var status = watch.ResponseStream.Current.Status;
                    if (status != Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving) why = $"its health is {status}";
                }
                MarkDown(stream, why ?? "its health watch ended");
            }
            catch (RpcException e) when (!retired.IsCancellationRequested) { MarkDown(stream, $"its health watch failed: {e.Status.Detail}"); }
            catch (OperationCanceledException) { return; }
            catch (RpcException) { return; }
            catch (ObjectDisposedException) { return; }
        }
    }

    private async Task ProbeAsync(ExpertStream stream)
    {
        ExpertNodeAddress address = stream.Node;
        CancellationToken retired = stream.Retired;
        while (!retired.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(ProbeInterval, retired).ConfigureAwait(false);
                ExpertNodeInfo info = await stream.Client.GetInfoAsync(new GetExpertInfoRequest(),
                    deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: retired).ConfigureAwait(false);
                if (!Serves(info, Plan.Version) || info.NodeId != address.Id) continue;
                // Back only once it says so too, or the health watch would take it down again at once.
                var health = await stream.Health.CheckAsync(HealthOfService,
                    deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: retired).ConfigureAwait(false);
                if (health.Status != Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving) continue;
                if (!await AnswersDispatchAsync(stream, retired).ConfigureAwait(false)) continue;
                stream.MarkUp();
                _logger.LogWarning("expert node {Node} ({Endpoint}) is back", address.Id, address.Endpoint);
                return;
            }
            catch (RpcException) { }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
        }
    }

    /// <summary>
    /// Whether the node answers a frame of no rows on a dispatch stream of its own within a second: a node whose
    /// GetInfo works but whose dispatch hangs must stay down, or every step would wait for it again.
    /// </summary>
    private async Task<bool> AnswersDispatchAsync(ExpertStream stream, CancellationToken retired)
    {
        PlacementPlan plan = Plan;
        using var call = stream.Client.Dispatch(deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: retired);
        await call.RequestStream.WriteAsync(new DispatchFrame
        {
            BatchId = 0, Layer = (uint)plan.Layers[0].Layer, Rows = 0, Hidden = (uint)Config.HiddenSize, Dtype = TensorDType.Bf16, PlanVersion = plan.Version,
        }).ConfigureAwait(false);
        if (!await call.ResponseStream.MoveNext(retired).ConfigureAwait(false)) return false;
        CombineFrame reply = call.ResponseStream.Current;
        bool ok = reply.Error.Length == 0;
        CombineFrameDecoder.Instance.Release(reply);
        await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        return ok;
    }

    internal ulong NextBatchId() => (ulong)Interlocked.Increment(ref _batch);

    internal async Task<CombineFrame> ExchangeAsync(int node, DispatchFrame frame)
    {
        ExpertStream stream = Volatile.Read(ref _streams)[node];
        return await stream.ExchangeAsync(frame).ConfigureAwait(false);
    }

    /// <summary>
    /// How long to wait for <paramref name="rows"/> rows from <paramref name="node"/> before giving up on it when
    /// replicas can take over: <see cref="FailoverFloor"/> plus <see cref="FailoverMultiplier"/> times what the node
    /// has taken per row (an average that follows its recent exchanges); the first exchanges, with nothing measured,
    /// get <see cref="FailoverFirst"/>.
    /// </summary>
    internal TimeSpan GiveUpAfter(int node, int rows)
    {
        double perRow = Volatile.Read(ref _streams)[node].SecondsPerRow;
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

    /// <summary>Every expert node's own view: its slots and the tokens each served.</summary>
    public async Task<ExpertNodeInfo[]> GetInfoAsync(CancellationToken cancel = default)
    {
        ExpertStream[] streams = Volatile.Read(ref _streams);
        var calls = new Task<ExpertNodeInfo>[streams.Length];
        for (int i = 0; i < calls.Length; i++)
            calls[i] = streams[i].Client.GetInfoAsync(new GetExpertInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancel).ResponseAsync;
        return await Task.WhenAll(calls).ConfigureAwait(false);
    }

    /// <summary>The routed experts of <paramref name="layer"/> reached through these streams.</summary>
    public RemoteExperts ForLayer(int layer, TensorDType dispatch) => new(this, layer, dispatch);

    public void Dispose()
    {
        _closing.Cancel();
        lock (_step)
        {
            foreach (ExpertStream s in _streams) s.Dispose();
            if (_staged is { } staged)
            {
                _staged = null;
                foreach (ExpertStream s in staged.Streams) if (Array.IndexOf(_streams, s) < 0) s.Dispose();
                staged.Done.TrySetCanceled();
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
