using System.Runtime.CompilerServices;

namespace Cluster.Engine.Tensors;

/// <summary>Scalar conversions between float32 and the stored formats. Kernels use the tables directly.</summary>
public static class NumberFormats
{
    /// <summary>FP8 E4M3 ("fn": no infinities, 0x7F/0xFF are NaN, max 448) decoded for every byte.</summary>
    public static readonly float[] Fp8E4M3ToFloat = BuildFp8Table();

    public const float Fp8E4M3Max = 448f;

    private static float[] BuildFp8Table()
    {
        var t = new float[256];
        for (int b = 0; b < 256; b++)
        {
            int sign = b >> 7, exp = (b >> 3) & 0xF, man = b & 0x7;
            float v;
            if (exp == 0xF && man == 0x7) v = float.NaN;
            else if (exp == 0) v = man / 8f * MathF.Pow(2, -6);           // subnormal
            else v = (1 + man / 8f) * MathF.Pow(2, exp - 7);
            t[b] = sign == 1 ? -v : v;
        }
        return t;
    }

    /// <summary>Round-to-nearest-even float32 to FP8 E4M3, saturating to +-448 as DeepSeek's quantizer does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte FloatToFp8E4M3(float x)
    {
        uint u = BitConverter.SingleToUInt32Bits(x);
        uint sign = (u >> 24) & 0x80;
        uint a = u & 0x7FFF_FFFF;
        if (a > 0x7F80_0000) return 0x7F;                       // NaN
        if (a >= 0x43E0_0000) return (byte)(sign | 0x7E);        // >= 448 (and infinity) saturates
        if (a < 0x3C80_0000)                                     // below 2^-6: subnormal steps of 2^-9
        {
            // Scaling by 2^9 is exact, so the float rounding below is the only rounding.
            float steps = BitConverter.UInt32BitsToSingle(a) * 512f;
            return (byte)(sign | (uint)MathF.Round(steps, MidpointRounding.ToEven));
        }
        // Normal: keep 3 of float32's 23 mantissa bits, rounding to nearest even; a carry rolls into the exponent.
        uint rounded = a + 0x7FFFF + ((a >> 20) & 1);
        uint code = (((rounded >> 23) - 127 + 7) << 3) | ((rounded >> 20) & 7);
        return (byte)(sign | Math.Min(code, 0x7Eu));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToFloat(ushort b) => BitConverter.Int32BitsToSingle(b << 16);

    /// <summary>Round-to-nearest-even, as torch does when casting to bfloat16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FloatToBF16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return (ushort)((u >> 16) | 0x40);
        uint rounding = 0x7FFF + ((u >> 16) & 1);
        return (ushort)((u + rounding) >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F16ToFloat(ushort h) => (float)BitConverter.UInt16BitsToHalf(h);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FloatToF16(float f) => BitConverter.HalfToUInt16Bits((Half)f);
}
