using System.Buffers;
using Cluster.Engine.Backend;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Model;

/// <summary>
/// The routed experts of one MoE layer, all of them or the subset an expert node hosts. <see cref="Run"/>
/// takes token rows with the gate's choices and returns each row's weighted sum of its experts' outputs: the
/// unit of work that dispatch sends to an expert node and combine adds back. The CPU backend's
/// <see cref="IHostedExperts"/>.
/// </summary>
public sealed class RoutedExperts : IHostedExperts
{
    /// <summary>Up to this many rows per expert, experts run one per thread rather than one after another.</summary>
    private const int ExpertParallelRows = 4;

    private readonly Mlp?[] _experts;
    private readonly int _layer, _hidden;
    private readonly ExpertJob _job;

    private readonly IKernels _kernels;

    public RoutedExperts(int layer, int hidden, Mlp?[] experts, IKernels kernels)
    {
        _kernels = kernels;
        _layer = layer;
        _hidden = hidden;
        _experts = experts;
        _job = new ExpertJob(this);
    }

    /// <summary>Loads "model.layers.{layer}.mlp.experts.{e}.*" for each e in <paramref name="hosted"/> (all when null).</summary>
    public static RoutedExperts Load(ITensorSource source, ModelConfig config, int layer, IEnumerable<int>? hosted = null, IKernels? kernels = null)
    {
        kernels ??= CpuBackend.Default.Kernels;
        var experts = new Mlp?[config.NRoutedExperts];
        foreach (int e in hosted ?? Enumerable.Range(0, config.NRoutedExperts))
        {
            if ((uint)e >= (uint)experts.Length) throw new ArgumentOutOfRangeException(nameof(hosted), $"layer {layer}: expert {e} out of range 0..{experts.Length - 1}");
            experts[e] = Mlp.Load(source, $"model.layers.{layer}.mlp.experts.{e}", config.HiddenSize, config.MoeIntermediateSize, kernels);
        }
        return new RoutedExperts(layer, config.HiddenSize, experts, kernels);
    }

    public int Layer => _layer;

    public bool Hosts(int expert) => (uint)expert < (uint)_experts.Length && _experts[expert] is not null;

    /// <summary>
    /// output[r] = Σ_k weights[r, k] · expert_{ids[r, k]}(rows[r]) for n rows with k = ids.Length / n choices each
    /// (negative ids are padding and skipped). Each expert runs once on all the rows that chose it. Sums are
    /// added in expert order, so the result does not depend on threading. A <paramref name="shared"/> expert, when
    /// given, is added for every row in the same parallel pass (one process holding both: fewer thread handoffs).
    /// </summary>
    public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null)
    {
        if (n == 0) return;
        int k = ids.Length / n;
        if (ids.Length != n * k || weights.Length != ids.Length) throw new ArgumentException($"experts: {ids.Length} ids and {weights.Length} weights for {n} rows");
        output[..(n * _hidden)].Clear();
        int[] order = ArrayPool<int>.Shared.Rent(ids.Length);
        int[] start = ArrayPool<int>.Shared.Rent(_experts.Length + 1), active = ArrayPool<int>.Shared.Rent(_experts.Length);
        float[] input = ArrayPool<float>.Shared.Rent(ids.Length * _hidden), result = ArrayPool<float>.Shared.Rent(ids.Length * _hidden);
        float[]? sharedIn = null, sharedOut = null;
        try
        {
            // Counting sort of (row, choice) pairs by expert, so each expert sees its rows as one batch.
            Array.Clear(start, 0, _experts.Length + 1);
            foreach (int e in ids)
            {
                if (e < 0) continue;
                if (!Hosts(e)) throw new InvalidOperationException($"layer {_layer}: expert {e} is not loaded here");
                start[e + 1]++;
            }
            int most = 0;
            for (int e = 0; e < _experts.Length; e++)
            {
                most = Math.Max(most, start[e + 1]);
                start[e + 1] += start[e];
            }
            int pairs = start[_experts.Length];
            int[] cursor = ArrayPool<int>.Shared.Rent(_experts.Length);
            Array.Copy(start, cursor, _experts.Length);
            for (int i = 0; i < ids.Length; i++) if (ids[i] >= 0) order[cursor[ids[i]]++] = i;
            ArrayPool<int>.Shared.Return(cursor);
            for (int j = 0; j < pairs; j++) rows.Slice(order[j] / k * _hidden, _hidden).CopyTo(input.AsSpan(j * _hidden));

            int used = 0;
            for (int e = 0; e < _experts.Length; e++) if (start[e + 1] > start[e]) active[used++] = e;
            if (shared is not null)
            {
                sharedIn = ArrayPool<float>.Shared.Rent(n * _hidden);
                sharedOut = ArrayPool<float>.Shared.Rent(n * _hidden);
                rows[..(n * _hidden)].CopyTo(sharedIn);
            }
            _job.Set(active, used, start, input, result, shared, sharedIn, sharedOut, n);
            int items = used + (shared is null ? 0 : 1);
            // Few rows per expert (decode): one expert per thread, each matmul single-threaded, instead of
            // splitting every small matmul across threads. Many rows (prefill): each expert's matmuls in parallel.
            if (most <= ExpertParallelRows) _kernels.For(items, 1, _job);
            else _job.Run(0, items);

            for (int j = 0; j < pairs; j++)
            {
                Span<float> dst = output.Slice(order[j] / k * _hidden, _hidden);
                _kernels.MultiplyAdd(result.AsSpan(j * _hidden, _hidden), weights[order[j]], dst, dst);
            }
            if (sharedOut is not null) _kernels.Add(output[..(n * _hidden)], sharedOut.AsSpan(0, n * _hidden), output);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(order);
            ArrayPool<int>.Shared.Return(start);
            ArrayPool<int>.Shared.Return(active);
            ArrayPool<float>.Shared.Return(input);
            ArrayPool<float>.Shared.Return(result);
            if (sharedIn is not null) ArrayPool<float>.Shared.Return(sharedIn);
            if (sharedOut is not null) ArrayPool<float>.Shared.Return(sharedOut);
        }
    }

    /// <summary>Runs a range of the chosen experts on their slices of the expert-sorted rows; item `used` is the shared expert.</summary>
    private sealed class ExpertJob(RoutedExperts owner) : IRangeBody
    {
        private int[] _active = [], _start = [];
        private float[] _input = [], _result = [];
        private int _used, _rows;
        private Mlp? _shared;
        private float[]? _sharedIn, _sharedOut;

        public void Set(int[] active, int used, int[] start, float[] input, float[] result, Mlp? shared, float[]? sharedIn, float[]? sharedOut, int rows) =>
            (_active, _used, _start, _input, _result, _shared, _sharedIn, _sharedOut, _rows) = (active, used, start, input, result, shared, sharedIn, sharedOut, rows);

        public void Run(int first, int end)
        {
            int hidden = owner._hidden;
            for (int i = first; i < end; i++)
            {
                if (i == _used)
                {
                    _shared!.Forward(_sharedIn.AsSpan(0, _rows * hidden), _rows, _sharedOut.AsSpan(0, _rows * hidden));
                    continue;
                }
                int e = _active[i];
                int count = _start[e + 1] - _start[e];
                int offset = _start[e] * hidden;
                owner._experts[e]!.Forward(_input.AsSpan(offset, count * hidden), count, _result.AsSpan(offset, count * hidden));
            }
        }
    }
}
