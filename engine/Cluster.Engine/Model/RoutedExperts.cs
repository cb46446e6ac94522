using System.Buffers;
using Cluster.Engine.Config;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Model;

/// <summary>
/// The routed experts of one MoE layer, all of them or the subset an expert node hosts. <see cref="Run"/>
/// takes token rows with the gate's choices and returns each row's weighted sum of its experts' outputs: the
/// unit of work that dispatch sends to an expert node and combine adds back.
/// </summary>
public sealed class RoutedExperts
{
    private readonly Mlp?[] _experts;
    private readonly int _layer, _hidden;

    public RoutedExperts(int layer, int hidden, Mlp?[] experts)
    {
        _layer = layer;
        _hidden = hidden;
        _experts = experts;
    }

    /// <summary>Loads "model.layers.{layer}.mlp.experts.{e}.*" for each e in <paramref name="hosted"/> (all when null).</summary>
    public static RoutedExperts Load(ITensorSource source, ModelConfig config, int layer, IEnumerable<int>? hosted = null)
    {
        var experts = new Mlp?[config.NRoutedExperts];
        foreach (int e in hosted ?? Enumerable.Range(0, config.NRoutedExperts))
        {
            if ((uint)e >= (uint)experts.Length) throw new ArgumentOutOfRangeException(nameof(hosted), $"layer {layer}: expert {e} out of range 0..{experts.Length - 1}");
            experts[e] = Mlp.Load(source, $"model.layers.{layer}.mlp.experts.{e}", config.HiddenSize, config.MoeIntermediateSize);
        }
        return new RoutedExperts(layer, config.HiddenSize, experts);
    }

    public bool Hosts(int expert) => (uint)expert < (uint)_experts.Length && _experts[expert] is not null;

    /// <summary>
    /// output[r] = Σ_k weights[r, k] · expert_{ids[r, k]}(rows[r]) for n rows with k = ids.Length / n choices each
    /// (negative ids are padding and skipped). Each expert runs once on all the rows that chose it.
    /// </summary>
    public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output)
    {
        if (n == 0) return;
        int k = ids.Length / n;
        if (ids.Length != n * k || weights.Length != ids.Length) throw new ArgumentException($"experts: {ids.Length} ids and {weights.Length} weights for {n} rows");
        output[..(n * _hidden)].Clear();
        int[] order = ArrayPool<int>.Shared.Rent(ids.Length);
        int[] start = ArrayPool<int>.Shared.Rent(_experts.Length + 1);
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
            for (int e = 0; e < _experts.Length; e++) start[e + 1] += start[e];
            int[] cursor = ArrayPool<int>.Shared.Rent(_experts.Length);
            Array.Copy(start, cursor, _experts.Length);
            for (int i = 0; i < ids.Length; i++) if (ids[i] >= 0) order[cursor[ids[i]]++] = i;
            ArrayPool<int>.Shared.Return(cursor);

            int most = 0;
            for (int e = 0; e < _experts.Length; e++) most = Math.Max(most, start[e + 1] - start[e]);
            float[] input = ArrayPool<float>.Shared.Rent(most * _hidden), result = ArrayPool<float>.Shared.Rent(most * _hidden);
            for (int e = 0; e < _experts.Length; e++)
            {
                int count = start[e + 1] - start[e];
                if (count == 0) continue;
                for (int j = 0; j < count; j++)
                    rows.Slice(order[start[e] + j] / k * _hidden, _hidden).CopyTo(input.AsSpan(j * _hidden));
                _experts[e]!.Forward(input.AsSpan(0, count * _hidden), count, result.AsSpan(0, count * _hidden));
                for (int j = 0; j < count; j++)
                {
                    int pair = order[start[e] + j];
                    Span<float> dst = output.Slice(pair / k * _hidden, _hidden);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(result.AsSpan(j * _hidden, _hidden), weights[pair], dst, dst);
                }
            }
            ArrayPool<float>.Shared.Return(input);
            ArrayPool<float>.Shared.Return(result);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(order);
            ArrayPool<int>.Shared.Return(start);
        }
    }
}
