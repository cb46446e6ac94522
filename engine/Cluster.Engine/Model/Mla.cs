using System.Buffers;
using Cluster.Engine.Backend;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Model;

/// <summary>
/// Multi-head latent attention. Queries come through a low-rank q_a_proj/q_a_layernorm/q_b_proj (or q_proj);
/// keys and values share one compressed latent per token (kv_a_proj_with_mqa, kv_a_layernorm) plus a single rope
/// key for all heads. Only the latent and the rope key are cached; kv_b_proj expands the latent to per-head
/// K_nope and V, either explicitly (naive) or folded into the query and the output (absorbed).
/// </summary>
/// <remarks>
/// Each token's [latent | k_pe] row goes to its slot of the latent memory once, rounded to the memory's format
/// (BF16 on serving nodes, see <see cref="Cache.ILatentCache"/>), and attention reads the stored rows back as float
/// through the sequence's block table: the current tokens attend over the same rounded values that later steps,
/// or another node, will read.
/// </remarks>
public sealed class Mla
{
    private readonly int _layer, _heads, _nope, _rope, _v, _lora, _qk, _row;
    private readonly float _scale;
    private readonly Weight? _qA, _qB, _q;
    private readonly RmsNorm? _qANorm;
    private readonly Weight _kvA, _kvB, _o;
    private readonly RmsNorm _kvANorm;
    private readonly Rotary _rotary;
    private readonly HeadJob _job;
    private readonly IKernels _kernels;

    public Mla(ITensorSource source, ModelConfig config, int layer, Rotary rotary, IKernels kernels)
    {
        _kernels = kernels;
        _layer = layer;
        _heads = config.NumAttentionHeads;
        _nope = config.QkNopeHeadDim;
        _rope = config.QkRopeHeadDim;
        _v = config.VHeadDim;
        _lora = config.KvLoraRank;
        _qk = _nope + _rope;
        _row = _lora + _rope;
        _scale = (float)config.SoftmaxScale;
        _rotary = rotary;
        int hidden = config.HiddenSize;
        string p = $"model.layers.{layer}.self_attn";
        if (config.QLoraRank is int qLora)
        {
            _qA = TensorShapes.Matrix(source, p + ".q_a_proj.weight", qLora, hidden);
            _qANorm = new RmsNorm(TensorShapes.Vector(source, p + ".q_a_layernorm.weight", qLora), config.RmsNormEps, kernels);
            _qB = TensorShapes.Matrix(source, p + ".q_b_proj.weight", _heads * _qk, qLora);
        }
        else _q = TensorShapes.Matrix(source, p + ".q_proj.weight", _heads * _qk, hidden);
        _kvA = TensorShapes.Matrix(source, p + ".kv_a_proj_with_mqa.weight", _row, hidden);
        _kvANorm = new RmsNorm(TensorShapes.Vector(source, p + ".kv_a_layernorm.weight", _lora), config.RmsNormEps, kernels);
        _kvB = TensorShapes.Matrix(source, p + ".kv_b_proj.weight", _heads * (_nope + _v), _lora);
        _o = TensorShapes.Matrix(source, p + ".o_proj.weight", hidden, _heads * _v);
        _job = new HeadJob(this);
    }

    /// <summary>
    /// Attention for every row of <paramref name="batch"/>: writes each row's latent and rope key to its slot of
    /// <paramref name="memory"/>, then attends causally over its sequence's rows (positions up to its own).
    /// </summary>
    public void Forward(ReadOnlySpan<float> x, in ForwardBatch batch, ILatentMemory memory, AttentionPath path, Span<float> output)
    {
        int n = batch.Rows;
        float[] q = Rent(n * _heads * _qk), kv = Rent(n * _row), attn = Rent(n * _heads * _v);
        try
        {
            Span<float> qs = q.AsSpan(0, n * _heads * _qk);
            if (_q is not null) _kernels.MatMulPair(x, n, _q, qs, _kvA, kv.AsSpan(0, n * _row));
            else
            {
                float[] qa = Rent(n * _qA!.Rows);
                Span<float> qas = qa.AsSpan(0, n * _qA.Rows);
                _kernels.MatMulPair(x, n, _qA, qas, _kvA, kv.AsSpan(0, n * _row));
                _qANorm!.Forward(qas, qas);
                _kernels.MatMul(qas, n, _qB!, qs);
                ArrayPool<float>.Shared.Return(qa);
            }

            Span<float> cos = stackalloc float[_rope / 2], sin = stackalloc float[_rope / 2];
            ReadOnlySpan<int> positions = batch.Positions, slots = batch.SlotMapping;
            for (int r = 0; r < n; r++)
            {
                _rotary.Angles(positions[r], cos, sin);
                // Normalised and rotated in place, then stored once in the cache's format.
                Span<float> kvRow = kv.AsSpan(r * _row, _row);
                _kvANorm.Forward(kvRow[.._lora], kvRow[.._lora]);
                _rotary.Apply(kvRow[_lora..], cos, sin);
                memory.Write(_layer, slots[r], kvRow);
                for (int h = 0; h < _heads; h++)
                    _rotary.Apply(qs.Slice((r * _heads + h) * _qk + _nope, _rope), cos, sin);
            }

            if (path == AttentionPath.Absorbed) Absorbed(q, batch, memory, attn);
            else Naive(q, batch, memory, attn);
            _kernels.MatMul(attn.AsSpan(0, n * _heads * _v), n, _o, output);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(q);
            ArrayPool<float>.Shared.Return(kv);
            ArrayPool<float>.Shared.Return(attn);
        }
    }

    /// <summary>
    /// The absorbed path (DeepSeek-V3's attn_impl "absorb"): each head's q_nope goes through kv_b's K rows into
    /// latent space beside its q_pe, the backend attends over the cached [latent | k_pe] rows with every head at
    /// once, and each head's latent context comes out through kv_b's V rows.
    /// </summary>
    private void Absorbed(float[] q, in ForwardBatch batch, ILatentMemory memory, float[] attn)
    {
        int n = batch.Rows;
        float[] qLatent = Rent(n * _heads * _row), context = Rent(n * _heads * _lora);
        try
        {
            _job.Set(HeadPass.AbsorbQuery, q, batch, attn, qLatent, context, null, null, null, 0, 0);
            _kernels.For(_heads, 1, _job);
            _kernels.LatentAttention(qLatent.AsSpan(0, n * _heads * _row), _heads, batch, memory, _layer, _scale, _lora, context.AsSpan(0, n * _heads * _lora));
            _job.Set(HeadPass.ProjectOut, q, batch, attn, qLatent, context, null, null, null, 0, 0);
            _kernels.For(_heads, 1, _job);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(qLatent);
            ArrayPool<float>.Shared.Return(context);
        }
    }

    /// <summary>Head h's query in latent space: [q_nope · W_UK | q_pe] for every row.</summary>
    private void AbsorbQuery(int h, float[] q, int n, float[] qLatent)
    {
        int qStride = _heads * _qk, latStride = _heads * _row;
        for (int r = 0; r < n; r++)
        {
            Span<float> ql = qLatent.AsSpan(r * latStride + h * _row, _row);
            ql[.._lora].Clear();
            q.AsSpan(r * qStride + h * _qk + _nope, _rope).CopyTo(ql[_lora..]);
        }
        _kernels.AccumulateTransposed(q.AsSpan(h * _qk), qStride, n, _kvB, h * (_nope + _v), _nope, qLatent.AsSpan(h * _row), latStride);
    }

    /// <summary>Head h's output for every row: its latent context through kv_b's V rows.</summary>
    private void ProjectOut(int h, int n, float[] context, float[] attn) =>
        _kernels.MatMul(context.AsSpan(h * _lora), _heads * _lora, n, _kvB, h * (_nope + _v) + _nope, _v, attn.AsSpan(h * _v), _heads * _v, parallel: false);

    private void Naive(float[] q, in ForwardBatch batch, ILatentMemory memory, float[] attn)
    {
        ReadOnlySpan<int> positions = batch.Positions, sequences = batch.SequenceIds;
        int n = batch.Rows;
        int[] rows = ArrayPool<int>.Shared.Rent(n);
        bool[] done = ArrayPool<bool>.Shared.Rent(n);
        Array.Clear(done, 0, n);
        try
        {
            // One sequence at a time: decompress its cached latents once for all its rows and heads.
            for (int first = 0; first < n; first++)
            {
                if (done[first]) continue;
                int sequence = sequences[first];
                int count = 0, length = 0;
                for (int r = first; r < n; r++)
                    if (!done[r] && sequences[r] == sequence)
                    {
                        done[r] = true;
                        rows[count++] = r;
                        length = Math.Max(length, positions[r] + 1);
                    }
                int kvStride = _heads * (_nope + _v);
                float[] cached = Rent(length * _row), keysValues = Rent(length * kvStride);
                memory.ReadSequence(_layer, batch.BlockTable(sequence), 0, length, cached);
                _kernels.MatMul(cached, _row, length, _kvB, 0, kvStride, keysValues, kvStride);
                _job.Set(HeadPass.Naive, q, batch, attn, null, null, cached, keysValues, rows, count, length);
                _kernels.For(_heads, 1, _job);
                ArrayPool<float>.Shared.Return(cached);
                ArrayPool<float>.Shared.Return(keysValues);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(rows);
            ArrayPool<bool>.Shared.Return(done);
        }
    }

    /// <summary>
    /// Per head, for all rows of one sequence at once: scores = Q·K^T and out = softmax(scores)·V as two matmuls
    /// over the sequence's keys [K_nope | k_pe] and its values stored transposed, each row masked to its causal prefix.
    /// </summary>
    private unsafe void NaiveHead(int h, float[] q, in ForwardBatch batch, float[] attn, float[] cached, float[] keysValues, int[] rows, int count, int length)
    {
        int kvStride = _heads * (_nope + _v), head = h * (_nope + _v);
        float[] keys = Rent(length * _qk), valuesT = Rent(_v * length), queries = Rent(count * _qk), scores = Rent(count * length), output = Rent(count * _v);
        try
        {
            for (int t = 0; t < length; t++)
            {
                keysValues.AsSpan(t * kvStride + head, _nope).CopyTo(keys.AsSpan(t * _qk));
                cached.AsSpan(t * _row + _lora, _rope).CopyTo(keys.AsSpan(t * _qk + _nope));
                for (int j = 0; j < _v; j++) valuesT[j * length + t] = keysValues[t * kvStride + head + _nope + j];
            }
            for (int i = 0; i < count; i++) q.AsSpan((rows[i] * _heads + h) * _qk, _qk).CopyTo(queries.AsSpan(i * _qk));
            fixed (float* k = keys, v = valuesT)
            {
                var keyMatrix = new Weight("attention keys", DType.F32, [length, _qk], (byte*)k, null, null);
                _kernels.MatMul(queries, _qk, count, keyMatrix, 0, length, scores, length, parallel: false);
                for (int i = 0; i < count; i++)
                {
                    int len = batch.Positions[rows[i]] + 1;
                    Span<float> row = scores.AsSpan(i * length, length);
                    _kernels.Multiply(row[..len], _scale, row[..len]);
                    _kernels.Softmax(row[..len]);
                    row[len..].Clear();
                }
                var valueMatrix = new Weight("attention values", DType.F32, [_v, length], (byte*)v, null, null);
                _kernels.MatMul(scores, length, count, valueMatrix, 0, _v, output, _v, parallel: false);
            }
            for (int i = 0; i < count; i++) output.AsSpan(i * _v, _v).CopyTo(attn.AsSpan((rows[i] * _heads + h) * _v));
        }
        finally
        {
            ArrayPool<float>.Shared.Return(keys);
            ArrayPool<float>.Shared.Return(valuesT);
            ArrayPool<float>.Shared.Return(queries);
            ArrayPool<float>.Shared.Return(scores);
            ArrayPool<float>.Shared.Return(output);
        }
    }

    private static float[] Rent(int n) => ArrayPool<float>.Shared.Rent(n);

    private enum HeadPass { Naive, AbsorbQuery, ProjectOut }

    /// <summary>The per-head loop body of each pass, reused across calls so a forward pass allocates nothing for it.</summary>
    private sealed class HeadJob(Mla mla) : IRangeBody
    {
        private HeadPass _pass;
        private float[] _q = [], _attn = [];
        private float[]? _qLatent, _context, _cached, _keysValues;
        private int[]? _rows;
        private int _count, _length;
        private ForwardBatch _batch;

        public void Set(HeadPass pass, float[] q, in ForwardBatch batch, float[] attn, float[]? qLatent, float[]? context, float[]? cached, float[]? keysValues, int[]? rows, int count, int length)
        {
            (_pass, _q, _batch, _attn, _qLatent, _context, _cached, _keysValues, _rows, _count, _length) = (pass, q, batch, attn, qLatent, context, cached, keysValues, rows, count, length);
        }

        public void Run(int start, int end)
        {
            for (int h = start; h < end; h++)
                switch (_pass)
                {
                    case HeadPass.AbsorbQuery: mla.AbsorbQuery(h, _q, _batch.Rows, _qLatent!); break;
                    case HeadPass.ProjectOut: mla.ProjectOut(h, _batch.Rows, _context!, _attn); break;
                    default: mla.NaiveHead(h, _q, _batch, _attn, _cached!, _keysValues!, _rows!, _count, _length); break;
                }
        }
    }
}
