using Cluster.Engine.Config;
using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.ExpertNode.Client;

/// <summary>
/// An attention node's side of dispatch/combine: one persistent Dispatch stream per expert node of the plan,
/// shared by the <see cref="RemoteExperts"/> of every MoE layer, and the tokens routed to each logical expert.
/// </summary>
public sealed class ExpertStreams : IDisposable, IAsyncDisposable
{
    private readonly ExpertStream[] _streams;
    private readonly long[][] _tokens;
    private long _batch;

    private ExpertStreams(PlacementPlan plan, ModelConfig config, ExpertStream[] streams)
    {
        Plan = plan;
        Config = config;
        _streams = streams;
        _tokens = new long[config.NumHiddenLayers][];
        foreach (LayerPlacement l in plan.Layers) _tokens[l.Layer] = new long[plan.RoutedExperts];
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
        TimeSpan? exchangeTimeout = null, CancellationToken cancel = default)
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
            return new ExpertStreams(plan, config, streams);
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

    internal ulong NextBatchId() => (ulong)Interlocked.Increment(ref _batch);

    internal Task<CombineFrame> ExchangeAsync(int node, DispatchFrame frame) => _streams[node].ExchangeAsync(frame);

    internal long[] TokenCounters(int layer) => _tokens[layer];

    /// <summary>Tokens routed so far to each logical expert of each MoE layer, in the expert-load file's shape.</summary>
    public ExpertLoad TokenCounts()
    {
        var counts = new Dictionary<int, double[]>();
        foreach (LayerPlacement l in Plan.Layers)
            counts[l.Layer] = Array.ConvertAll(_tokens[l.Layer], t => (double)t);
        return new ExpertLoad(counts);
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
        foreach (ExpertStream s in _streams) s.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
