using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Cluster.Engine.Model;
using Cluster.ExpertNode.Codec;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Google.Protobuf;

namespace Cluster.ExpertNode.Client;

/// <summary>
/// One MoE layer's routed experts on the expert nodes. Run dispatches each row once to every node holding one
/// of its chosen experts (picking live replicas round robin per expert, so replicas share the work and the choice
/// is deterministic), sends one frame per node concurrently, and adds the nodes' partial sums in node order.
/// Failover: a node whose stream breaks, or that has not answered when <see cref="ExpertStreams.GiveUpAfter"/>
/// passes while every expert it was sent has a live replica elsewhere, is marked down and its rows go again to
/// those replicas within the same step; an expert with no live replica fails the step naming layer, expert and
/// node. Under dual micro-batch overlap two micro-batches' exchanges are in flight at once, each in its own slot;
/// like <see cref="RoutedExperts"/>, one instance is not safe to call concurrently.
/// </summary>
public sealed class RemoteExperts : IOverlappedExperts
{
    private readonly ExpertStreams _streams;
    private readonly int _layer, _hidden;
    private readonly TensorDType _dispatch;
    private readonly bool _firstLayer, _lastLayer;
    // The plan of the current step and what is sized by its nodes; replaced when a step starts under a newer plan.
    private PlacementPlan _plan = null!;
    private LayerPlacement _placement = null!;
    private int[] _nextReplica = [];
    // One set of exchanges per micro-batch (two may be in flight at once under dual micro-batch overlap).
    private readonly Slot[] _slots = [new(), new()];

    internal RemoteExperts(ExpertStreams streams, int layer, TensorDType dispatch)
    {
        if (dispatch is not (TensorDType.Bf16 or TensorDType.Fp8E4M3 or TensorDType.F32)) throw new ArgumentException($"dispatch dtype must be BF16, FP8_E4M3 or F32 (got {dispatch})");
        _streams = streams;
        _layer = layer;
        _hidden = streams.Config.HiddenSize;
        _dispatch = dispatch;
        // A step is one pass over the MoE layers in order: the first starts it, the last ends it.
        _firstLayer = streams.Plan.Layers[0].Layer == layer;
        _lastLayer = streams.Plan.Layers[^1].Layer == layer;
        Follow(streams.Plan);
    }

    /// <summary>Routes by <paramref name="plan"/>: its placement of this layer, round robin restarting, buffers per node.</summary>
    private void Follow(PlacementPlan plan)
    {
        _plan = plan;
        _placement = plan.Layer(_layer);
        _nextReplica = new int[_placement.Experts];
        foreach (Slot slot in _slots) slot.Size(plan.Nodes.Count);
    }

    public int Layer => _layer;

    public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null)
    {
        Begin(0, rows, n, ids, weights);
        Finish(0, rows, n, output, shared);
    }

    public void Begin(int slot, ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights)
    {
        if (_firstLayer) _streams.BeginStep(slot);
        try
        {
            PlacementPlan plan = _streams.Plan;
            if (!ReferenceEquals(plan, _plan)) Follow(plan);
            Slot s = _slots[slot];
            s.Rows = n;
            if (n == 0) return;
            int k = ids.Length / n;
            if (ids.Length != n * k || weights.Length != ids.Length) throw new ArgumentException($"experts: {ids.Length} ids and {weights.Length} weights for {n} rows");
            s.K = k;
            s.Batches = s.Rounds[0];
            foreach (NodeBatch b in s.Batches) b.Reset(n, k);
            Route(n, k, ids, weights, s.Batches);
            Send(s, rows);
        }
        catch
        {
            _streams.EndStep(slot);
            throw;
        }
    }

    public void Finish(int slot, ReadOnlySpan<float> rows, int n, Span<float> output, Mlp? shared)
    {
        try { Collect(_slots[slot], rows, n, output, shared); }
        catch
        {
            _streams.EndStep(slot);
            throw;
        }
        if (_lastLayer) _streams.EndStep(slot);
    }

    public void Abandon(int slot)
    {
        Slot s = _slots[slot];
        foreach (Task<CombineFrame>? t in s.Pending)
        {
            try { t?.Wait(); }
            catch (AggregateException) { }
        }
        ReleaseReplies(s);
        _streams.EndStep(slot);
    }

    private void Collect(Slot s, ReadOnlySpan<float> rows, int n, Span<float> output, Mlp? shared)
    {
        if (n == 0) return;
        if (n != s.Rows) throw new ArgumentException($"experts: finishing {n} rows of a micro-batch begun with {s.Rows}");
        // The shared expert computes while the rows travel; its sum is added after the routed one, as in one process.
        float[]? sharedOut = null;
        if (shared is not null)
        {
            sharedOut = ArrayPool<float>.Shared.Rent(n * _hidden);
            shared.Forward(rows[..(n * _hidden)], n, sharedOut.AsSpan(0, n * _hidden));
        }
        output[..(n * _hidden)].Clear();
        try
        {
            // Each round adds what its nodes sent back and routes a lost node's rows to live replicas for the next;
            // a node is lost at most once per step, so the rounds end.
            for (int round = 0; ; round++)
            {
                bool lost = CollectRound(s, output);
                if (!lost) break;
                NodeBatch[] next = s.Rounds[(round + 1) % 2];
                foreach (NodeBatch b in next) b.Reset(n, s.K);
                Reroute(s, next);
                s.Batches = next;
                Send(s, rows);
            }
        }
        finally
        {
            if (sharedOut is not null)
            {
                TensorPrimitives.Add(output[..(n * _hidden)], sharedOut.AsSpan(0, n * _hidden), output);
                ArrayPool<float>.Shared.Return(sharedOut);
            }
        }
    }

    private void Send(Slot s, ReadOnlySpan<float> rows)
    {
        ulong batch = _streams.NextBatchId();
        NodeBatch[] batches = s.Batches;
        for (int i = 0; i < batches.Length; i++)
        {
            if (batches[i].Rows == 0)
            {
                s.Pending[i] = null;
                continue;
            }
            batches[i].Encode(rows, _hidden, _dispatch);
            s.Pending[i] = _streams.ExchangeAsync(i, batches[i].Frame(batch, _layer, _hidden, s.K, _dispatch, _plan.Version));
        }
    }

    /// <summary>
    /// Waits for the round's exchanges (every one must finish before the buffers they wrap are reused), gives up on
    /// a late node whose experts all have live replicas, adds every reply into <paramref name="output"/>, and says
    /// whether a node was lost (its rows still to be routed). Any other failure is thrown once all have finished.
    /// </summary>
    private bool CollectRound(Slot s, Span<float> output)
    {
        NodeBatch[] batches = s.Batches;
        Task<CombineFrame>?[] pending = s.Pending;
        for (int i = 0; i < pending.Length; i++)
        {
            if (pending[i] is not { } t) continue;
            TimeSpan patience = _streams.GiveUpAfter(i, batches[i].Rows);
            if (!Finished(t, patience) && FirstUncovered(batches[i], i) < 0)
                _streams.MarkDown(i, $"no combine within {patience.TotalMilliseconds:0} ms");
        }
        Exception? failure = null;
        bool lost = false;
        Array.Clear(s.Lost);
        for (int i = 0; i < pending.Length; i++)
        {
            if (pending[i] is not { } t) continue;
            try { t.GetAwaiter().GetResult(); }
            catch (ExpertNodeException e) when (e.Lost && failure is null)
            {
                _streams.MarkDown(i, e.InnerException?.Message ?? e.Message);
                int uncovered = FirstUncovered(batches[i], i);
                if (uncovered < 0) lost = s.Lost[i] = true;
                else failure = new ExpertNodeException(e.NodeId, $"{e.Message}; layer {_layer}: expert {uncovered} has no live replica", e.InnerException, lost: true);
                pending[i] = null;
            }
            catch (Exception e)
            {
                failure ??= e;
                pending[i] = null;
            }
        }
        try
        {
            if (failure is null)
                for (int i = 0; i < pending.Length; i++)
                    if (pending[i] is { } t) batches[i].AddInto(t.Result, _hidden, output, _plan.Nodes[i].Id);
        }
        finally
        {
            ReleaseReplies(s);
        }
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        // A lost node's batch stays in place for Reroute; the others are done.
        for (int i = 0; i < batches.Length; i++)
            if (!s.Lost[i]) batches[i].Clear();
        return lost;
    }

    /// <summary>Whether the exchange ended within <paramref name="patience"/>, failed or not (its failure is read later).</summary>
    private static bool Finished(Task<CombineFrame> exchange, TimeSpan patience)
    {
        try { return exchange.Wait(patience); }
        catch (AggregateException) { return true; }
    }

    /// <summary>An expert <paramref name="batch"/> asks of <paramref name="node"/> that has no live replica on another node; -1 when all have one.</summary>
    private int FirstUncovered(NodeBatch batch, int node)
    {
        for (int r = 0; r < batch.Rows; r++)
            foreach (int e in batch.IdsOf(r))
                if (e >= 0 && LiveReplica(e, node, advance: false) < 0) return e;
        return -1;
    }

    /// <summary>
    /// A live replica's node of <paramref name="expert"/> other than <paramref name="except"/>, the next in round
    /// robin order (which <paramref name="advance"/> moves on); -1 when none.
    /// </summary>
    private int LiveReplica(int expert, int except, bool advance = true)
    {
        ReadOnlySpan<ExpertReplica> replicas = _placement.ReplicasOf(expert);
        int start = _nextReplica[expert];
        for (int t = 0; t < replicas.Length; t++)
        {
            int pick = (start + t) % replicas.Length;
            int node = replicas[pick].Node;
            if (node == except || _streams.IsDown(node)) continue;
            if (advance) _nextReplica[expert] = pick + 1 == replicas.Length ? 0 : pick + 1;
            return node;
        }
        return -1;
    }

    /// <summary>Sends the rows of every node lost this round to live replicas of their experts.</summary>
    private void Reroute(Slot s, NodeBatch[] to)
    {
        NodeBatch[] from = s.Batches;
        for (int node = 0; node < from.Length; node++)
        {
            if (!s.Lost[node]) continue;
            NodeBatch lost = from[node];
            for (int r = 0; r < lost.Rows; r++)
            {
                ReadOnlySpan<int> choices = lost.IdsOf(r);
                ReadOnlySpan<float> weights = lost.WeightsOf(r);
                for (int j = 0; j < choices.Length; j++)
                {
                    if (choices[j] < 0) continue;
                    int target = LiveReplica(choices[j], node);
                    if (target < 0) throw Uncovered(choices[j], node);
                    to[target].Add(lost.TokenOf(r), j, choices[j], weights[j]);
                }
            }
            lost.Clear();
        }
    }

    private ExpertNodeException Uncovered(int expert, int node)
    {
        ExpertNodeAddress address = _plan.Nodes[node];
        return new ExpertNodeException(address.Id,
            $"layer {_layer}: expert {expert} has no live replica (expert node {address.Id} ({address.Endpoint}) is down: {_streams.DownReason(node)})");
    }

    /// <summary>Gives the replies' pooled buffers back and forgets the exchanges (they must not outlive the step).</summary>
    private static void ReleaseReplies(Slot s)
    {
        foreach (Task<CombineFrame>? t in s.Pending)
            if (t is { IsCompletedSuccessfully: true }) CombineFrameDecoder.Instance.Release(t.Result);
        Array.Clear(s.Pending);
    }

    /// <summary>One micro-batch's exchanges: two sets of per-node batches (a round's failed rows are routed into the other set while this one's are still read), the replies awaited, the nodes lost.</summary>
    private sealed class Slot
    {
        public NodeBatch[][] Rounds = [];
        public NodeBatch[] Batches = [];
        public Task<CombineFrame>?[] Pending = [];
        public bool[] Lost = [];
        public int Rows, K;

        public void Size(int nodes)
        {
            if (Pending.Length == nodes) return;
            Rounds = new NodeBatch[2][];
            for (int r = 0; r < 2; r++)
            {
                Rounds[r] = new NodeBatch[nodes];
                for (int i = 0; i < nodes; i++) Rounds[r][i] = new NodeBatch();
            }
            Batches = Rounds[0];
            Pending = new Task<CombineFrame>?[nodes];
            Lost = new bool[nodes];
        }
    }

    /// <summary>
    /// Assigns each (row, choice) to a live replica's node (round robin); a row goes once to each node it needs.
    /// An expert whose every replica is down is still sent to one of them: the node may be back, and if not the
    /// step fails naming it, as it would have to anyway.
    /// </summary>
    private void Route(int n, int k, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, NodeBatch[] batches)
    {
        for (int r = 0; r < n; r++)
        {
            for (int j = 0; j < k; j++)
            {
                int e = ids[r * k + j];
                if (e < 0) continue;
                if (e >= _placement.Experts) throw new ArgumentException($"layer {_layer}: expert id {e} out of range 0..{_placement.Experts - 1}");
                int node = LiveReplica(e, -1);
                if (node < 0)
                {
                    ReadOnlySpan<ExpertReplica> replicas = _placement.ReplicasOf(e);
                    int pick = _nextReplica[e];
                    _nextReplica[e] = pick + 1 == replicas.Length ? 0 : pick + 1;
                    node = replicas[pick].Node;
                }
                batches[node].Add(r, j, e, weights[r * k + j]);
            }
        }
    }

    /// <summary>The rows bound for one node and their wire buffers, grown to the largest batch and then reused.</summary>
    private sealed class NodeBatch
    {
        private int[] _tokenOfRow = [], _rowOfToken = [];
        // Choices as raw bytes, so the frame wraps them without a copy.
        private byte[] _ids = [], _weights = [], _activations = [], _scales = [];
        private int _k;

        public int Rows { get; private set; }

        private Span<int> Ids => MemoryMarshal.Cast<byte, int>(_ids.AsSpan());
        private Span<float> Weights => MemoryMarshal.Cast<byte, float>(_weights.AsSpan());

        public int TokenOf(int row) => _tokenOfRow[row];
        public ReadOnlySpan<int> IdsOf(int row) => Ids.Slice(row * _k, _k);
        public ReadOnlySpan<float> WeightsOf(int row) => Weights.Slice(row * _k, _k);

        /// <summary>Forgets the rows (after they were added or moved), keeping the buffers.</summary>
        public void Clear()
        {
            for (int r = 0; r < Rows; r++) _rowOfToken[_tokenOfRow[r]] = -1;
            Rows = 0;
        }

        public void Reset(int n, int k)
        {
            Rows = 0;
            _k = k;
            Grow(ref _tokenOfRow, n);
            Grow(ref _rowOfToken, n);
            Grow(ref _ids, n * k * sizeof(int));
            Grow(ref _weights, n * k * sizeof(float));
            _rowOfToken.AsSpan(0, n).Fill(-1);
        }

        public void Add(int token, int choice, int expert, float weight)
        {
            int row = _rowOfToken[token];
            if (row < 0)
            {
                row = _rowOfToken[token] = Rows++;
                _tokenOfRow[row] = token;
                Ids.Slice(row * _k, _k).Fill(-1);
                Weights.Slice(row * _k, _k).Clear();
            }
            Ids[row * _k + choice] = expert;
            Weights[row * _k + choice] = weight;
        }

        public void Encode(ReadOnlySpan<float> rows, int hidden, TensorDType dtype)
        {
            Grow(ref _activations, RowCodec.Bytes(dtype, Rows * hidden));
            int blocks = RowCodec.ScaleBlocks(hidden);
            if (dtype == TensorDType.Fp8E4M3) Grow(ref _scales, Rows * blocks * sizeof(float));
            Span<float> scales = MemoryMarshal.Cast<byte, float>(_scales.AsSpan());
            for (int r = 0; r < Rows; r++)
            {
                ReadOnlySpan<float> row = rows.Slice(_tokenOfRow[r] * hidden, hidden);
                if (dtype == TensorDType.Bf16) RowCodec.EncodeBf16(row, _activations.AsSpan(r * hidden * 2, hidden * 2));
                else if (dtype == TensorDType.F32) MemoryMarshal.AsBytes(row).CopyTo(_activations.AsSpan(r * hidden * 4, hidden * 4));
                else RowCodec.EncodeFp8Row(row, _activations.AsSpan(r * hidden, hidden), scales.Slice(r * blocks, blocks));
            }
        }

        public DispatchFrame Frame(ulong batch, int layer, int hidden, int k, TensorDType dtype, ulong version) => new()
        {
            BatchId = batch,
            Layer = (uint)layer,
            Rows = (uint)Rows,
            Hidden = (uint)hidden,
            Dtype = dtype,
            Activations = UnsafeByteOperations.UnsafeWrap(_activations.AsMemory(0, RowCodec.Bytes(dtype, Rows * hidden))),
            Scales = dtype == TensorDType.Fp8E4M3
                ? UnsafeByteOperations.UnsafeWrap(_scales.AsMemory(0, Rows * RowCodec.ScaleBlocks(hidden) * sizeof(float)))
                : ByteString.Empty,
            TopK = (uint)k,
            ExpertIds = UnsafeByteOperations.UnsafeWrap(_ids.AsMemory(0, Rows * k * sizeof(int))),
            Weights = UnsafeByteOperations.UnsafeWrap(_weights.AsMemory(0, Rows * k * sizeof(float))),
            PlanVersion = version,
        };

        /// <summary>Adds the node's partial sums (F32 or BF16) into the rows they belong to.</summary>
        public void AddInto(CombineFrame reply, int hidden, Span<float> output, string node)
        {
            int bytes = reply.Dtype switch
            {
                TensorDType.F32 => 4,
                TensorDType.Bf16 => 2,
                _ => throw new ExpertNodeException(node, $"expert node {node} sent partial sums as {reply.Dtype} (F32 or BF16 expected)"),
            };
            if (reply.Rows != Rows || reply.PartialSums.Length != Rows * hidden * bytes)
                throw new ExpertNodeException(node, $"expert node {node} sent {reply.Rows} rows / {reply.PartialSums.Length} bytes of partial sums for {Rows} rows");
            ReadOnlySpan<byte> data = reply.PartialSums.Span;
            for (int r = 0; r < Rows; r++)
            {
                Span<float> dst = output.Slice(_tokenOfRow[r] * hidden, hidden);
                ReadOnlySpan<byte> src = data.Slice(r * hidden * bytes, hidden * bytes);
                if (bytes == 4) System.Numerics.Tensors.TensorPrimitives.Add(dst, MemoryMarshal.Cast<byte, float>(src), dst);
                else
                {
                    ReadOnlySpan<ushort> bf = MemoryMarshal.Cast<byte, ushort>(src);
                    for (int c = 0; c < hidden; c++) dst[c] += Engine.Tensors.NumberFormats.BF16ToFloat(bf[c]);
                }
            }
        }

        private static void Grow<T>(ref T[] buffer, int length)
        {
            if (buffer.Length < length) buffer = new T[Math.Max(length, buffer.Length * 2)];
        }
    }
}
