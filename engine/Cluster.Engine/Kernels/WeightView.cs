using Cluster.Engine.Tensors;

namespace Cluster.Engine.Kernels;

/// <summary>
/// The raw fields of a <see cref="Weight"/> as an unmanaged struct, so parallel kernels can pass it through a
/// pointer-sized context.
/// </summary>
public readonly unsafe struct WeightView
{
    public readonly byte* Data;
    public readonly DType Type;
    public readonly int Rows, Cols;
    /// <summary>FP8 only: the F32 [ceil(rows/128), ceil(cols/128)] scale_inv grid.</summary>
    public readonly float* Scales;
    public readonly int ScaleCols;

    public WeightView(Weight w)
    {
        Data = w.Data;
        Type = w.DType;
        Rows = w.Rows;
        Cols = w.Cols;
        if (w.DType == DType.F8E4M3)
        {
            Scales = (float*)w.ScaleInv!.Data;
            ScaleCols = w.ScaleInv.Cols;
        }
    }

    public byte* Row(int row) => Data + (long)row * Cols * Type switch { DType.F32 => 4, DType.BF16 or DType.F16 => 2, _ => 1 };

    public float* RowScales(int row) => Scales + (long)(row / Weight.Fp8Block) * ScaleCols;
}
