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
    public static byte FloatToFp8E4M3(float x)
    {
        if (float.IsNaN(x)) return 0x7F;
        byte sign = (byte)(float.IsNegative(x) ? 0x80 : 0);
        float a = MathF.Abs(x);
        if (a >= Fp8E4M3Max) return (byte)(sign | 0x7E);
        // Codes 0x00..0x7E are the non-negative values in increasing order: find the pair around a.
        int lo = 0, hi = 0x7E;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) >> 1;
            if (Fp8E4M3ToFloat[mid] <= a) lo = mid; else hi = mid;
        }
        float dLo = a - Fp8E4M3ToFloat[lo], dHi = Fp8E4M3ToFloat[hi] - a;
        int code = dLo < dHi ? lo : dHi < dLo ? hi : ((lo & 1) == 0 ? lo : hi); // ties to even mantissa
        return (byte)(sign | code);
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
