using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Backend;

/// <summary>
/// The math the model's layers run, one instance per backend: every matmul, norm, activation and attention
/// reduction of <see cref="Model.Transformer"/> goes through here, so the layers read like DeepSeek-V3's
/// inference/model.py while the arithmetic is the backend's. Activations are float32 rows in host memory;
/// weights are the stored tensors (BF16, FP8 with block scales, F32) that an implementation decodes as it likes
/// (the CPU one inside its dot products; a GPU one would upload each <see cref="Weight"/> once and keep it).
/// </summary>
/// <remarks>
/// Results must not depend on how an implementation splits work over threads: the engine's batched decode,
/// chunked prefill and expert partial sums are checked bit for bit against unsplit runs.
/// </remarks>
public interface IKernels
{
    /// <summary>y[b, r] = x[b, :] · W[r, :] for every row of W (PyTorch's F.linear without bias).</summary>
    void MatMul(ReadOnlySpan<float> x, int batch, Weight w, Span<float> y);

    /// <summary>
    /// Rows [rowStart, rowStart + rows) of W, x rows <paramref name="xStride"/> apart, y rows <paramref name="yStride"/>
    /// apart. <paramref name="parallel"/> false runs on the calling thread (a body of <see cref="For"/> already).
    /// </summary>
    void MatMul(ReadOnlySpan<float> x, int xStride, int batch, Weight w, int rowStart, int rows, Span<float> y, int yStride, bool parallel = true);

    /// <summary>Two matrices over the same input in one pass (gate_proj with up_proj, q_a_proj with kv_a_proj_with_mqa).</summary>
    void MatMulPair(ReadOnlySpan<float> x, int batch, Weight a, Span<float> ya, Weight b, Span<float> yb);

    /// <summary>y[b, :] += Σ_k x[b, k] · W[rowStart + k, :] for k &lt; rows (x times W, not W^T), on the calling thread.</summary>
    void AccumulateTransposed(ReadOnlySpan<float> x, int xStride, int batch, Weight w, int rowStart, int rows, Span<float> y, int yStride);

    /// <summary>
    /// Absorbed MLA attention over the latent memory (what FlashMLA's decode kernel does on a GPU): for every row r
    /// and head h, context[r, h, :latentWidth] = Σ_t softmax_t(scale · q[r, h, :] · row_t) · row_t[:latentWidth] over
    /// the positions t ≤ positions[r] of row r's sequence, row_t being layer <paramref name="layer"/>'s stored
    /// [latent | k_pe]. q is [rows, heads, RowSize] (each head's query already in latent space); context is
    /// [rows, heads, latentWidth]. Every row's rows must be written before the call.
    /// </summary>
    void LatentAttention(ReadOnlySpan<float> q, int heads, in ForwardBatch batch, ILatentMemory memory, int layer, float scale, int latentWidth, Span<float> context);

    /// <summary>Rows <paramref name="ids"/> of <paramref name="table"/> decoded to float32, one after another (the embedding lookup).</summary>
    void Embed(Weight table, ReadOnlySpan<int> ids, Span<float> rows);

    /// <summary>RMSNorm of each row of <paramref name="weight"/>'s width: y = x / sqrt(mean(x²) + eps) * weight.</summary>
    void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y);

    /// <summary>SwiGLU's gating in place: gate = silu(gate) * up.</summary>
    void SiluMul(Span<float> gate, ReadOnlySpan<float> up);

    /// <summary>Softmax in place.</summary>
    void Softmax(Span<float> x);

    /// <summary>y = 1 / (1 + exp(-x)).</summary>
    void Sigmoid(ReadOnlySpan<float> x, Span<float> y);

    /// <summary>Rotates one rope vector in place (HF's rotate_half; de-interleaved first when <paramref name="interleaved"/>).</summary>
    void Rope(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, bool interleaved);

    float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b);

    /// <summary>y = a + b.</summary>
    void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y);

    /// <summary>y = x · scale.</summary>
    void Multiply(ReadOnlySpan<float> x, float scale, Span<float> y);

    /// <summary>y = x · scale + addend.</summary>
    void MultiplyAdd(ReadOnlySpan<float> x, float scale, ReadOnlySpan<float> addend, Span<float> y);

    /// <summary>
    /// body.Run(start, end) over [0, count) in chunks of at least <paramref name="grain"/> items, returning when all
    /// are done (attention heads, experts). An implementation may run it all on the calling thread.
    /// </summary>
    void For(int count, int grain, IRangeBody body);
}
