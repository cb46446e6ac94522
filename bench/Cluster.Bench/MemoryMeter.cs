using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Cluster.Engine.Kernels;

namespace Cluster.Bench;

/// <summary>
/// Parallel copies of 512 MiB (bytes read + written per second, STREAM's convention) and parallel sums (bytes
/// read per second) on the kernels' own worker pool: the machine's memory bandwidth, measured beside a decode in
/// the same run so that the two share the machine's load.
/// </summary>
internal sealed unsafe class MemoryMeter : IDisposable
{
    private const long Size = 512L << 20;
    private const int Slice = 4 << 20;
    private readonly byte* _source = (byte*)NativeMemory.AlignedAlloc((nuint)Size, 64), _destination = (byte*)NativeMemory.AlignedAlloc((nuint)Size, 64);

    public MemoryMeter()
    {
        new Span<byte>(_source, (int)Size).Fill(1);
        new Span<byte>(_destination, (int)Size).Fill(2);
    }

    /// <summary>Medians of <paramref name="runs"/> copies and sums, in GB/s.</summary>
    public (double Copy, double Read) Measure(int runs)
    {
        var job = new CopyJob { Source = _source, Destination = _destination };
        int slices = (int)(Size / Slice);
        double[] copy = new double[runs], read = new double[runs];
        for (int r = 0; r < runs; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            CpuBackend.Default.Pool.For(slices, 1, &job, &CopySlices);
            copy[r] = 2.0 * Size / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
            t0 = Stopwatch.GetTimestamp();
            CpuBackend.Default.Pool.For(slices, 1, &job, &SumSlices);
            read[r] = Size / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
        }
        return (EngineBench.Median(copy), EngineBench.Median(read));
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_source);
        NativeMemory.AlignedFree(_destination);
    }

    private struct CopyJob
    {
        public byte* Source, Destination;
    }

    private static void CopySlices(void* context, int start, int end)
    {
        var job = (CopyJob*)context;
        for (int s = start; s < end; s++)
            Buffer.MemoryCopy(job->Source + (long)s * Slice, job->Destination + (long)s * Slice, Slice, Slice);
    }

    private static float s_sink;

    private static void SumSlices(void* context, int start, int end)
    {
        var job = (CopyJob*)context;
        float sum = 0;
        for (int s = start; s < end; s++) sum += TensorPrimitives.Sum(new ReadOnlySpan<float>(job->Source + (long)s * Slice, Slice / 4));
        s_sink += sum;
    }
}
