using System.Buffers;
using System.Numerics.Tensors;
using Cluster.Engine.Backend;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Kernels;

/// <summary>
/// The CPU backend's absorbed MLA attention (what FlashMLA's decode kernel is on a GPU): every head of a row scores
/// and sums the same cached [latent | k_pe] rows, so the rows are read once per row of the batch for all heads, in
/// chunks that stay in L2 (one matmul of every head's query against the chunk, then one accumulation of the chunk
/// weighted by every head's probabilities), with the softmax kept online as in flash decoding. A long context is
/// cut into splits that run on different threads and are merged in order at the end, so batch-1 decode keeps
/// every core busy and the result does not depend on how many there are.
/// </summary>
internal sealed class LatentAttention(WorkerPool pool) : IRangeBody
{
    public WorkerPool Pool => pool;

    /// <summary>Cached rows scored together: 64 rows of 576 values in float are 147 KB, resident in L2 with their scores.</summary>
    private const int Chunk = 64;
    /// <summary>Positions per work item: fixed from position 0, so the splits (and the bits) never depend on the thread count.</summary>
    private const int Split = 512;

    [ThreadStatic] private static float[]? t_rows, t_scores;

    private ForwardBatch _batch;
    private ILatentMemory? _memory;
    private float[] _q = [];
    private float[] _partial = [];
    private int[] _itemRow = [], _itemStart = [];
    private int _heads, _layer, _width, _partialStride;
    private float _scale;

    /// <summary>
    /// context[r, h, :latentWidth] = Σ_t softmax_t(scale · q[r, h, :] · row_t) · row_t[:latentWidth] over the positions
    /// t ≤ positions[r] of row r's sequence. q is [rows, heads, RowSize]; context is [rows, heads, latentWidth].
    /// </summary>
    public void Run(ReadOnlySpan<float> q, int heads, in ForwardBatch batch, ILatentMemory memory, int layer, float scale, int latentWidth, Span<float> context)
    {
        int n = batch.Rows, width = memory.RowSize;
        if (q.Length < (long)n * heads * width) throw new ArgumentException($"latent attention: {q.Length} query values for {n} rows of {heads} heads of {width}");
        if (context.Length < (long)n * heads * latentWidth) throw new ArgumentException($"latent attention: {context.Length} context values for {n} rows of {heads} heads of {latentWidth}");
        ReadOnlySpan<int> positions = batch.Positions;
        int items = 0;
        for (int r = 0; r < n; r++) items += (positions[r] + Split) / Split;
        // Per item: the running maximum and sum of each head, then each head's unnormalised sum of rows.
        int stride = heads * (2 + width);
        int[] itemRow = ArrayPool<int>.Shared.Rent(items), itemStart = ArrayPool<int>.Shared.Rent(items);
        float[] partial = ArrayPool<float>.Shared.Rent(items * stride), qCopy = ArrayPool<float>.Shared.Rent(n * heads * width);
        try
        {
            for (int r = 0, i = 0; r < n; r++)
                for (int start = 0; start <= positions[r]; start += Split, i++) (itemRow[i], itemStart[i]) = (r, start);
            q[..(n * heads * width)].CopyTo(qCopy);
            (_batch, _memory, _q, _partial, _itemRow, _itemStart) = (batch, memory, qCopy, partial, itemRow, itemStart);
            (_heads, _layer, _width, _partialStride, _scale) = (heads, layer, width, stride, scale);
            pool.For(items, 1, this);
            Merge(n, heads, width, latentWidth, positions, partial, stride, context);
        }
        finally
        {
            (_memory, _q, _partial, _itemRow, _itemStart) = (null, [], [], [], []);
            ArrayPool<int>.Shared.Return(itemRow);
            ArrayPool<int>.Shared.Return(itemStart);
            ArrayPool<float>.Shared.Return(partial);
            ArrayPool<float>.Shared.Return(qCopy);
        }
    }

    /// <summary>Each row's splits in order: rescaled to the largest maximum, summed, divided by the summed weights.</summary>
    private static void Merge(int n, int heads, int width, int latentWidth, ReadOnlySpan<int> positions, float[] partial, int stride, Span<float> context)
    {
        int item = 0;
        for (int r = 0; r < n; r++)
        {
            int splits = (positions[r] + Split) / Split;
            for (int h = 0; h < heads; h++)
            {
                float max = float.NegativeInfinity;
                for (int s = 0; s < splits; s++) max = Math.Max(max, partial[(item + s) * stride + h]);
                Span<float> ctx = context.Slice((r * heads + h) * latentWidth, latentWidth);
                ctx.Clear();
                float total = 0;
                for (int s = 0; s < splits; s++)
                {
                    int at = (item + s) * stride;
                    float weight = MathF.Exp(partial[at + h] - max);
                    total += weight * partial[at + heads + h];
                    TensorPrimitives.MultiplyAdd(partial.AsSpan(at + 2 * heads + h * width, latentWidth), weight, ctx, ctx);
                }
                TensorPrimitives.Multiply(ctx, 1 / total, ctx);
            }
            item += splits;
        }
    }

    public void Run(int start, int end)
    {
        for (int i = start; i < end; i++) Item(i);
    }

    private unsafe void Item(int item)
    {
        int r = _itemRow[item], first = _itemStart[item], heads = _heads, width = _width;
        int last = Math.Min(_batch.Positions[r] + 1, first + Split);
        float[] rows = t_rows is { } a && a.Length >= Chunk * width ? a : (t_rows = new float[Chunk * width]);
        float[] scores = t_scores is { } b && b.Length >= heads * Chunk ? b : (t_scores = new float[heads * Chunk]);
        Span<float> partial = _partial.AsSpan(item * _partialStride, _partialStride);
        Span<float> max = partial[..heads], sum = partial.Slice(heads, heads), acc = partial[(2 * heads)..];
        max.Fill(float.NegativeInfinity);
        sum.Clear();
        acc.Clear();
        ReadOnlySpan<float> q = _q.AsSpan(r * heads * width, heads * width);
        ReadOnlySpan<int> blockTable = _batch.BlockTable(_batch.SequenceIds[r]);
        fixed (float* pRows = rows)
            for (int at = first; at < last; at += Chunk)
            {
                int count = Math.Min(Chunk, last - at);
                _memory!.ReadSequence(_layer, blockTable, at, count, rows.AsSpan(0, count * width));
                var chunk = new Weight("latent rows", DType.F32, [count, width], (byte*)pRows, null, null);
                MatMul.Run(pool, q, width, heads, chunk, 0, count, scores, Chunk, parallel: false);
                for (int h = 0; h < heads; h++)
                {
                    Span<float> s = scores.AsSpan(h * Chunk, count);
                    TensorPrimitives.Multiply(s, _scale, s);
                    float top = Math.Max(max[h], TensorPrimitives.Max(s));
                    float rescale = MathF.Exp(max[h] - top);
                    TensorPrimitives.Subtract(s, top, s);
                    TensorPrimitives.Exp(s, s);
                    sum[h] = sum[h] * rescale + TensorPrimitives.Sum(s);
                    if (rescale != 1)
                    {
                        Span<float> a2 = acc.Slice(h * width, width);
                        TensorPrimitives.Multiply(a2, rescale, a2);
                    }
                    max[h] = top;
                }
                MatMul.AccumulateTransposed(scores, Chunk, heads, chunk, 0, count, acc, width);
            }
    }
}
