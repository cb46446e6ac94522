using Cluster.Protos.V1;

namespace Cluster.AttentionNode;

/// <summary>
/// How routed expert rows travel to the expert nodes. F32 is the exact mode: with an F32 latent cache the
/// distributed run gives the single-process engine's argmax, so a difference is a bug, not rounding.
/// </summary>
public enum DispatchFormat { Bf16, Fp8, F32 }

/// <summary>The names a dispatch format has on command lines (bf16, fp8, f32) and its dtype on the wire.</summary>
public static class DispatchFormats
{
    /// <summary>The format named <paramref name="name"/>; a FormatException naming the choices otherwise.</summary>
    public static DispatchFormat Parse(string name) => name switch
    {
        "bf16" => DispatchFormat.Bf16,
        "fp8" => DispatchFormat.Fp8,
        "f32" => DispatchFormat.F32,
        _ => throw new FormatException($"--dispatch must be bf16, fp8 or f32 (got '{name}')"),
    };

    public static string Name(this DispatchFormat format) => format switch
    {
        DispatchFormat.Fp8 => "fp8",
        DispatchFormat.F32 => "f32",
        _ => "bf16",
    };

    public static TensorDType WireType(this DispatchFormat format) => format switch
    {
        DispatchFormat.Fp8 => TensorDType.Fp8E4M3,
        DispatchFormat.F32 => TensorDType.F32,
        _ => TensorDType.Bf16,
    };
}
