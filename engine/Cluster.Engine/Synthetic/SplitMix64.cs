using System.Runtime.CompilerServices;

namespace Cluster.Engine.Synthetic;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014): a fixed, documented generator, so a seed gives the same checkpoint bytes on
/// every .NET version (System.Random's algorithm is not guaranteed).
/// </summary>
public struct SplitMix64(ulong state)
{
    private ulong _state = state;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Next()
    {
        ulong z = _state += 0x9E37_79B9_7F4A_7C15;
        return Mix(z);
    }

    /// <summary>Uniform in [-1, 1) with 24 random bits, exactly representable in float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float NextSigned() => ((long)(Next() >> 40) - (1 << 23)) * (1f / (1 << 23));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB;
        return z ^ (z >> 31);
    }

    /// <summary>A stream seed from a model seed, a tensor name (FNV-1a) and a block index: independent per tensor and block.</summary>
    public static ulong StreamSeed(long seed, string name, long block)
    {
        ulong h = 0xCBF2_9CE4_8422_2325;
        foreach (char c in name) h = (h ^ c) * 0x0000_0100_0000_01B3;
        return Mix(Mix((ulong)seed ^ h) + (ulong)block);
    }
}
