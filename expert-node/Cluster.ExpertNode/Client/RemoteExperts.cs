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
/// of its chosen experts (picking replicas round robin per expert, so replicas share the work and the choice is
/// deterministic), sends one frame per node concurrently, and adds the nodes' partial sums in node order.
/// Like <see cref="RoutedExperts"/>, one instance is not safe to run concurrently.
/// </summary>
public sealed class RemoteExperts : IRoutedExperts
{
    private readonly ExpertStreams _streams;
    private readonly LayerPlacement _placement;
    private readonly int _layer, _hidden;
    private readonly TensorDType _dispatch;
    private readonly int[] _nextReplica;
    private readonly NodeBatch[] _nodes;
    private readonly Task<CombineFrame>?[] _pending;

    internal RemoteExperts(ExpertStreams streams, int layer, TensorDType dispatch)
    {
        if (dispatch is not (TensorDType.Bf16 or TensorDType.Fp8E4M3 or TensorDType.F32)) throw new ArgumentException($"dispatch dtype must be BF16, FP8_E4M3 or F32 (got {dispatch})");
        _streams = streams;
        _placement = streams.Plan.Layer(layer);
        _layer = layer;
        _hidden = streams.Config.HiddenSize;
        _dispatch = dispatch;
        _nextReplica = new int[_placement.Experts];
        _nodes = new NodeBatch[streams.NodeCount];
        for (int i = 0; i < _nodes.Length; i++) _nodes[i] = new NodeBatch();
        _pending = new Task<CombineFrame>?[_nodes.Length];
    }

    public int Layer => _layer;

    public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null)
    {
        if (n == 0) return;
        int k = ids.Length / n;
        if (ids.Length != n * k || weights.Length != ids.Length) throw new ArgumentException($"experts: {ids.Length} ids and {weights.Length} weights for {n} rows");
        Route(n, k, ids, weights);
        foreach (NodeBatch b in _nodes)
            if (b.Rows > 0) b.Encode(rows, _hidden, _dispatch);

        ulong batch = _streams.NextBatchId();
        for (int i = 0; i < _nodes.Length; i++)
            _pending[i] = _nodes[i].Rows == 0 ? null : _streams.ExchangeAsync(i, _nodes[i].Frame(batch, _layer, _hidden, k, _dispatch, _streams.Plan.Version));
        // The shared expert computes while the rows travel; its sum is added after the routed one, as in one process.
        float[]? sharedOut = null;
        if (shared is not null)
        {
            sharedOut = ArrayPool<float>.Shared.Rent(n * _hidden);
            shared.Forward(rows[..(n * _hidden)], n, sharedOut.AsSpan(0, n * _hidden));
        }
        // Every exchange must finish before the buffers they wrap are reused, failed or not.
        Exception? failure = null;
        foreach (Task<CombineFrame>? t in _pending)
        {
            if (t is null) continue;
            try { t.GetAwaiter().GetResult(); }
            catch (Exception e) { failure ??= e; }
        }
        if (failure is not null)
        {
            ReleaseReplies();
            if (sharedOut is not null) ArrayPool<float>.Shared.Return(sharedOut);
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }

        output[..(n * _hidden)].Clear();
        try
        {
            for (int i = 0; i < _nodes.Length; i++)
                if (_pending[i] is { } t) _nodes[i].AddInto(t.Result, _hidden, output, _streams.Plan.Nodes[i].Id);
        }
        finally
        {
            ReleaseReplies();
        }
        if (sharedOut is not null)
        {
            TensorPrimitives.Add(output[..(n * _hidden)], sharedOut.AsSpan(0, n * _hidden), output);
            ArrayPool<float>.Shared.Return(sharedOut);
        }
    }

    /// <summary>Gives the replies' pooled buffers back and forgets the exchanges (they must not outlive the step).</summary>
    private void ReleaseReplies()
    {
        foreach (Task<CombineFrame>? t in _pending)
            if (t is { IsCompletedSuccessfully: true }) CombineFrameDecoder.Instance.Release(t.Result);
        Array.Clear(_pending);
    }

    /// <summary>Assigns each (row, choice) to a replica's node; a row goes once to each node it needs.</summary>
    private void Route(int n, int k, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights)
    {
        foreach (NodeBatch b in _nodes) b.Reset(n, k);
        long[] counts = _streams.TokenCounters(_layer);
        for (int r = 0; r < n; r++)
        {
            for (int j = 0; j < k; j++)
            {
                int e = ids[r * k + j];
                if (e < 0) continue;
                if (e >= _placement.Experts) throw new ArgumentException($"layer {_layer}: expert id {e} out of range 0..{_placement.Experts - 1}");
                counts[e]++;
                ReadOnlySpan<ExpertReplica> replicas = _placement.ReplicasOf(e);
                int pick = _nextReplica[e];
                _nextReplica[e] = pick + 1 == replicas.Length ? 0 : pick + 1;
                _nodes[replicas[pick].Node].Add(r, j, e, weights[r * k + j]);
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
