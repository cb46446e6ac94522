using Cluster.Engine.Tensors;

namespace Cluster.Engine.Checkpoints;

/// <summary>What a tensor is for, which decides how a synthetic checkpoint initialises it.</summary>
public enum TensorRole
{
    /// <summary>Token embedding rows: O(1) values, so the first RMSNorm sees well-scaled input.</summary>
    Embedding,
    /// <summary>A linear layer's [out, in] matrix.</summary>
    Projection,
    /// <summary>RMSNorm gain, around 1.</summary>
    Norm,
    /// <summary>The MoE router's [n_routed_experts, hidden] matrix (kept in BF16 even in FP8 checkpoints).</summary>
    Router,
    /// <summary>e_score_correction_bias: F32, used for choosing experts only.</summary>
    RouterBias,
}

/// <summary>
/// One tensor a config implies: its Hugging Face name, shape ([out, in] for matrices), and the dtype a synthetic
/// checkpoint stores it in. FP8 tensors also have a <c>Name + "_scale_inv"</c> companion that is not listed.
/// </summary>
public sealed record TensorSpec(string Name, int[] Shape, DType DType, TensorRole Role, bool IsMtp)
{
    public long Elements => Shape.Length == 1 ? Shape[0] : (long)Shape[0] * Shape[1];

    /// <summary>Bytes on disk including the FP8 scales.</summary>
    public long StoredBytes => Elements * DType.Size() + (DType == DType.F8E4M3 ? ScaleShape.Elements() * 4L : 0);

    /// <summary>[ceil(rows/128), ceil(cols/128)], the FP8 block-scale shape.</summary>
    public int[] ScaleShape => Fp8Scales.ShapeFor(Shape);

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

public static class Fp8Scales
{
    public const string Suffix = "_scale_inv";

    public static int[] ShapeFor(int[] shape) =>
    [
        (shape[0] + Weight.Fp8Block - 1) / Weight.Fp8Block,
        ((shape.Length > 1 ? shape[1] : 1) + Weight.Fp8Block - 1) / Weight.Fp8Block,
    ];

    public static long Elements(this int[] shape) => shape.Length == 1 ? shape[0] : (long)shape[0] * shape[1];
}
