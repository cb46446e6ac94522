namespace Cluster.Engine.Cache;

/// <summary>How a latent cache stores its rows. BF16 is what DeepSeek serves with; F32 keeps the reference path exact.</summary>
public enum LatentFormat { BF16, F32 }

public static class LatentFormats
{
    public static int BytesPerValue(this LatentFormat format) => format == LatentFormat.BF16 ? 2 : 4;

    /// <summary>The name on the wire and on the command line: "bf16" or "f32".</summary>
    public static string Name(this LatentFormat format) => format == LatentFormat.BF16 ? "bf16" : "f32";

    public static LatentFormat Parse(string name) => name.ToLowerInvariant() switch
    {
        "bf16" => LatentFormat.BF16,
        "f32" => LatentFormat.F32,
        _ => throw new ArgumentException($"unknown latent cache format '{name}' (expected bf16 or f32)"),
    };
}
