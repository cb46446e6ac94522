namespace Cluster.Engine.Tensors;

/// <summary>Element types a checkpoint tensor can be stored in (safetensors names in comments).</summary>
public enum DType
{
    F32,    // "F32"
    BF16,   // "BF16"
    F16,    // "F16"
    F8E4M3, // "F8_E4M3": DeepSeek-V3's weights, with a "<name>_scale_inv" F32 tensor of 128x128 block scales
}

public static class DTypes
{
    public static int Size(this DType t) => t switch
    {
        DType.F32 => 4,
        DType.BF16 or DType.F16 => 2,
        DType.F8E4M3 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static string SafetensorsName(this DType t) => t switch
    {
        DType.F32 => "F32",
        DType.BF16 => "BF16",
        DType.F16 => "F16",
        DType.F8E4M3 => "F8_E4M3",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static bool TryParseSafetensors(string name, out DType t)
    {
        switch (name)
        {
            case "F32": t = DType.F32; return true;
            case "BF16": t = DType.BF16; return true;
            case "F16": t = DType.F16; return true;
            case "F8_E4M3": t = DType.F8E4M3; return true;
            default: t = default; return false;
        }
    }
}
