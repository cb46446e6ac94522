using System.Buffers;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Synthetic;

/// <summary>
/// Random DeepSeek-V3 weights in the exact Hugging Face layout. Values are uniform with the spread chosen so that
/// activations keep their scale through the layers: projections have std 1/sqrt(fan_in), embeddings std 1, norm
/// gains 1 +- 0.2, and the router's logits are O(1) with a nonzero correction bias, so tokens pick different experts.
/// Every 128-row band of every tensor has its own stream seeded by (seed, name, band): the bytes depend only on
/// the seed, never on thread scheduling, and the FP8 and BF16 variants of a model share the same underlying values.
/// </summary>
public static class SyntheticModel
{
    private const int Band = Weight.Fp8Block;

    /// <summary><paramref name="preset"/> with quantization_config set when <paramref name="weightDType"/> is FP8.</summary>
    public static ModelConfig ConfigFor(ModelConfig preset, DType weightDType) =>
        preset with { Fp8BlockSize = weightDType == DType.F8E4M3 ? [Weight.Fp8Block, Weight.Fp8Block] : null };

    /// <summary>The tensors a synthetic checkpoint of <paramref name="config"/> holds, MTP layer included.</summary>
    public static List<TensorSpec> Layout(ModelConfig config, DType weightDType)
    {
        if (weightDType is not (DType.BF16 or DType.F8E4M3))
            throw new ArgumentException($"synthetic weights are BF16 or F8_E4M3, not {weightDType.SafetensorsName()}");
        return CheckpointLayout.For(config, weightDType);
    }

    /// <summary>
    /// All weights of the model in memory, generated in parallel (progress is reported from worker threads).
    /// <paramref name="expertSkew"/> &gt; 0 calibrates the router biases for Zipf-like expert popularity (<see cref="ExpertSkew"/>).
    /// </summary>
    public static InMemoryTensorSource CreateWeights(ModelConfig config, int seed, DType weightDType, IProgress<ByteProgress>? progress = null, double expertSkew = 0)
    {
        List<TensorSpec> specs = Layout(config, weightDType);
        var weights = new Weight[specs.Count];
        long total = 0, done = 0;
        foreach (TensorSpec s in specs) total += s.StoredBytes;
        // Largest first, so one big embedding does not start last and leave the other cores idle.
        int[] order = Enumerable.Range(0, specs.Count).OrderByDescending(i => specs[i].Elements).ToArray();
        Parallel.ForEach(order, i =>
        {
            weights[i] = Generate(config, specs[i], seed, expertSkew);
            long d = Interlocked.Add(ref done, specs[i].StoredBytes);
            progress?.Report(new ByteProgress(d, total));
        });
        return new InMemoryTensorSource(weights);
    }

    /// <summary>The checkpoint's tensors, each generated when the writer asks for it (streaming: nothing is held twice).</summary>
    public static List<PendingTensor> Plan(ModelConfig config, int seed, DType weightDType, double expertSkew = 0) =>
        Layout(config, weightDType).ConvertAll(spec => new PendingTensor(spec.Name, spec.DType, spec.Shape, () => Generate(config, spec, seed, expertSkew)));

    private static Weight Generate(ModelConfig config, TensorSpec spec, long seed, double expertSkew) =>
        expertSkew > 0 && spec.Role == TensorRole.RouterBias ? ExpertSkew.Bias(config, spec, seed, expertSkew) : Generate(spec, seed);

    /// <summary>Shards of about 512 MB, at least two as in every published checkpoint.</summary>
    public static int ShardCount(ModelConfig config, DType weightDType)
    {
        long total = 0;
        foreach (TensorSpec s in Layout(config, weightDType)) total += s.StoredBytes;
        return (int)Math.Max(2, (total + (512L << 20) - 1) / (512L << 20));
    }

    /// <summary>One tensor's values, stored in its spec's dtype (with scales when FP8).</summary>
    public static unsafe Weight Generate(TensorSpec spec, long seed)
    {
        int rows = spec.Shape[0], cols = spec.Shape.Length > 1 ? spec.Shape[1] : 1;
        (float center, float amplitude) = Distribution(spec, cols);
        var buffer = new NativeBuffer(spec.Elements * spec.DType.Size());
        byte* dst = buffer.Pointer;
        int bandsR = (rows + Band - 1) / Band, bandsC = (cols + Band - 1) / Band;
        float[]? scales = spec.DType == DType.F8E4M3 ? new float[bandsR * bandsC] : null;
        float[] values = ArrayPool<float>.Shared.Rent(Band * cols);
        try
        {
            for (int b = 0; b < bandsR; b++)
            {
                int bandRows = Math.Min(Band, rows - b * Band);
                Span<float> v = values.AsSpan(0, bandRows * cols);
                var rng = new SplitMix64(SplitMix64.StreamSeed(seed, spec.Name, b));
                for (int i = 0; i < v.Length; i++) v[i] = center + amplitude * rng.NextSigned();
                long offset = (long)b * Band * cols;
                switch (spec.DType)
                {
                    case DType.F32:
                        v.CopyTo(new Span<float>((float*)dst + offset, v.Length));
                        break;
                    case DType.BF16:
                        var bf = new Span<ushort>((ushort*)dst + offset, v.Length);
                        for (int i = 0; i < v.Length; i++) bf[i] = NumberFormats.FloatToBF16(v[i]);
                        break;
                    case DType.F16:
                        var hf = new Span<ushort>((ushort*)dst + offset, v.Length);
                        for (int i = 0; i < v.Length; i++) hf[i] = NumberFormats.FloatToF16(v[i]);
                        break;
                    case DType.F8E4M3:
                        QuantizeBand(v, bandRows, cols, scales.AsSpan(b * bandsC, bandsC), new Span<byte>(dst + offset, v.Length));
                        break;
                }
            }
        }
        finally { ArrayPool<float>.Shared.Return(values); }
        Weight? scaleInv = scales is null ? null : Weight.FromFloats(spec.Name + Fp8Scales.Suffix, [bandsR, bandsC], scales, DType.F32);
        return new Weight(spec.Name, spec.DType, spec.Shape, dst, scaleInv, buffer);
    }

    /// <summary>DeepSeek's block quantisation of up to 128 rows: per 128x128 block scale_inv = amax/448, fp8 = round(x/scale_inv).</summary>
    private static void QuantizeBand(ReadOnlySpan<float> v, int bandRows, int cols, Span<float> scales, Span<byte> dst)
    {
        scales.Clear();
        for (int r = 0; r < bandRows; r++)
            for (int c = 0; c < cols; c++)
                scales[c / Band] = MathF.Max(scales[c / Band], MathF.Abs(v[r * cols + c]));
        for (int k = 0; k < scales.Length; k++) scales[k] = scales[k] == 0 ? 1f : scales[k] / NumberFormats.Fp8E4M3Max;
        for (int r = 0; r < bandRows; r++)
            for (int c = 0; c < cols; c++)
                dst[r * cols + c] = NumberFormats.FloatToFp8E4M3(v[r * cols + c] / scales[c / Band]);
    }

    /// <summary>Center and half-width of the uniform distribution: a half-width of sqrt(3)*std gives that std.</summary>
    private static (float Center, float Amplitude) Distribution(TensorSpec spec, int fanIn) => spec.Role switch
    {
        TensorRole.Embedding => (0f, MathF.Sqrt(3f)),
        TensorRole.Projection or TensorRole.Router => (0f, MathF.Sqrt(3f / fanIn)),
        TensorRole.Norm => (1f, 0.2f),
        // Comparable to the spread of sigmoid scores between experts, so it changes some choices but not most.
        TensorRole.RouterBias => (0f, 0.05f),
        _ => throw new ArgumentOutOfRangeException(nameof(spec)),
    };
}
