using System.Runtime.InteropServices;

namespace Cluster.Engine.Tensors;

/// <summary>
/// A checkpoint tensor in its stored dtype, read in place (memory-mapped file or native buffer): weights are
/// never widened to float32 in memory; kernels convert as they read. FP8 weights carry their
/// <c>_scale_inv</c> tensor: F32 [ceil(rows/128), ceil(cols/128)], dequantised value = fp8 * scale_inv.
/// </summary>
public sealed unsafe class Weight
{
    public const int Fp8Block = 128;

    private readonly object? _keepAlive;

    public Weight(string name, DType dtype, int[] shape, byte* data, Weight? scaleInv, object? keepAlive)
    {
        if (shape.Length is < 1 or > 2) throw new InvalidDataException($"tensor {name}: expected 1 or 2 dimensions, got {shape.Length}");
        Name = name;
        DType = dtype;
        Shape = shape;
        Data = data;
        ScaleInv = scaleInv;
        _keepAlive = keepAlive;
        if (dtype == DType.F8E4M3)
        {
            if (scaleInv is null) throw new InvalidDataException($"tensor {name}: F8_E4M3 weight without {name}_scale_inv");
            int br = (Rows + Fp8Block - 1) / Fp8Block, bc = (Cols + Fp8Block - 1) / Fp8Block;
            if (scaleInv.DType != DType.F32 || scaleInv.Rows != br || scaleInv.Cols != bc)
                throw new InvalidDataException($"tensor {name}_scale_inv: expected F32 [{br}, {bc}], got {scaleInv.DType} [{string.Join(", ", scaleInv.Shape)}]");
        }
    }

    public string Name { get; }
    public DType DType { get; }
    /// <summary>[rows, cols] for matrices (PyTorch's [out_features, in_features]), [n] for vectors.</summary>
    public int[] Shape { get; }
    public byte* Data { get; }
    public Weight? ScaleInv { get; }
    public int Rows => Shape[0];
    public int Cols => Shape.Length > 1 ? Shape[1] : 1;
    public long Elements => (long)Rows * Cols;
    public long ByteLength => Elements * DType.Size();
    /// <summary>Bytes this weight occupies including its scales.</summary>
    public long TotalBytes => ByteLength + (ScaleInv?.ByteLength ?? 0);

    public ReadOnlySpan<byte> Bytes => new(Data, checked((int)ByteLength));

    /// <summary>Scalar reference dequantisation of one row (tests and cold paths; kernels do their own).</summary>
    public void DequantizeRow(int row, Span<float> dst)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row));
        int cols = Cols;
        if (dst.Length < cols) throw new ArgumentException("destination too short", nameof(dst));
        long start = (long)row * cols;
        switch (DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)Data + start, cols).CopyTo(dst);
                break;
            case DType.BF16:
                for (int c = 0; c < cols; c++) dst[c] = NumberFormats.BF16ToFloat(((ushort*)Data)[start + c]);
                break;
            case DType.F16:
                for (int c = 0; c < cols; c++) dst[c] = NumberFormats.F16ToFloat(((ushort*)Data)[start + c]);
                break;
            case DType.F8E4M3:
                float* scales = (float*)ScaleInv!.Data + (long)(row / Fp8Block) * ScaleInv.Cols;
                for (int c = 0; c < cols; c++) dst[c] = NumberFormats.Fp8E4M3ToFloat[Data[start + c]] * scales[c / Fp8Block];
                break;
        }
    }

    /// <summary>
    /// Stores float32 values as <paramref name="dtype"/> in a native buffer. FP8 uses DeepSeek's scheme: per
    /// 128x128 block, scale_inv = amax / 448 and fp8 = round(value / scale_inv).
    /// </summary>
    public static Weight FromFloats(string name, int[] shape, ReadOnlySpan<float> values, DType dtype)
    {
        long n = shape.Length == 1 ? shape[0] : (long)shape[0] * shape[1];
        if (values.Length != n) throw new ArgumentException($"tensor {name}: {values.Length} values for shape [{string.Join(", ", shape)}]");
        var buffer = new NativeBuffer(n * dtype.Size());
        byte* p = buffer.Pointer;
        Weight? scaleInv = null;
        switch (dtype)
        {
            case DType.F32:
                values.CopyTo(new Span<float>(p, values.Length));
                break;
            case DType.BF16:
                for (int i = 0; i < values.Length; i++) ((ushort*)p)[i] = NumberFormats.FloatToBF16(values[i]);
                break;
            case DType.F16:
                for (int i = 0; i < values.Length; i++) ((ushort*)p)[i] = NumberFormats.FloatToF16(values[i]);
                break;
            case DType.F8E4M3:
                int rows = shape[0], cols = shape.Length > 1 ? shape[1] : 1;
                int br = (rows + Fp8Block - 1) / Fp8Block, bc = (cols + Fp8Block - 1) / Fp8Block;
                var scales = new float[br * bc];
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++)
                    {
                        ref float s = ref scales[r / Fp8Block * bc + c / Fp8Block];
                        s = MathF.Max(s, MathF.Abs(values[r * cols + c]));
                    }
                for (int i = 0; i < scales.Length; i++) scales[i] = scales[i] == 0 ? 1f : scales[i] / NumberFormats.Fp8E4M3Max;
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++)
                        p[(long)r * cols + c] = NumberFormats.FloatToFp8E4M3(values[r * cols + c] / scales[r / Fp8Block * bc + c / Fp8Block]);
                scaleInv = FromFloats(name + "_scale_inv", [br, bc], scales, DType.F32);
                break;
        }
        return new Weight(name, dtype, shape, p, scaleInv, buffer);
    }
}

/// <summary>
/// Native memory freed when the last weight that uses it is collected. The GC is told about the memory, so that
/// streams of large temporary weights (writing a checkpoint tensor by tensor) get collected promptly.
/// </summary>
public sealed unsafe class NativeBuffer
{
    public NativeBuffer(long bytes)
    {
        Length = Math.Max(bytes, 1);
        Pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Length, 64);
        GC.AddMemoryPressure(Length);
    }

    public byte* Pointer { get; }
    public long Length { get; }

    ~NativeBuffer()
    {
        NativeMemory.AlignedFree(Pointer);
        GC.RemoveMemoryPressure(Length);
    }
}
