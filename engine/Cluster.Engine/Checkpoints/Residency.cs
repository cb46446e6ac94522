using System.Runtime.InteropServices;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Checkpoints;

/// <summary>
/// Makes mapped weights resident before the first token: the kernel is asked to read each weight's pages ahead
/// (madvise MADV_WILLNEED, so a cold page cache fills with large sequential reads), then every page is touched once
/// from all cores, so that the first forward pass pays no page faults (a fault per 4-64 KB of weights, taken one
/// at a time inside a matmul, is what made a fresh process's first tokens slow).
/// </summary>
public static unsafe class Residency
{
    private const int Page = 4096;
    private const int MadvWillNeed = 3;
    private const int MadvDontNeed = 4;

    /// <summary>Touches every page of <paramref name="weights"/> (and their FP8 scales); reports bytes done out of the total.</summary>
    public static void Prefault(IReadOnlyCollection<Weight> weights, IProgress<ByteProgress>? progress = null)
    {
        var regions = new List<(IntPtr Start, long Length)>(weights.Count * 2);
        long total = 0;
        foreach (Weight w in weights)
        {
            Add(regions, w, ref total);
            if (w.ScaleInv is { } scale) Add(regions, scale, ref total);
        }
        if (OperatingSystem.IsLinux())
            foreach ((IntPtr start, long length) in regions) Advise(start, length);
        long done = 0;
        int next = -1;
        // One region at a time per worker, largest regions spread first by their order in the checkpoint.
        Parallel.For(0, Environment.ProcessorCount, _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < regions.Count)
            {
                (IntPtr start, long length) = regions[i];
                Touch((byte*)start, length);
                progress?.Report(new ByteProgress(Interlocked.Add(ref done, length), total));
            }
        });
    }

    /// <summary>
    /// Gives back the resident pages of mapped weights no longer used (an expert node's dropped slots): the pages wholly
    /// inside each weight leave this process (madvise MADV_DONTNEED), so its resident memory falls by their size, while
    /// the page cache keeps them and a later load of the same weights costs minor faults, not reads. Pages shared with a
    /// neighbouring tensor stay. The mapping is read-only, so nothing is lost; a read after this refaults the page.
    /// </summary>
    public static void Evict(IEnumerable<Weight> weights)
    {
        if (!OperatingSystem.IsLinux()) return;
        foreach (Weight w in weights)
        {
            Evict(w);
            if (w.ScaleInv is { } scale) Evict(scale);
        }
    }

    private static void Evict(Weight w)
    {
        long start = ((long)w.Data + Page - 1) & ~(long)(Page - 1), end = ((long)w.Data + w.ByteLength) & ~(long)(Page - 1);
        // Advice again: a refusal only keeps the pages resident.
        if (end > start) _ = MAdvise((void*)start, (nuint)(end - start), MadvDontNeed);
    }

    private static void Add(List<(IntPtr, long)> regions, Weight w, ref long total)
    {
        if (w.ByteLength == 0) return;
        regions.Add(((IntPtr)w.Data, w.ByteLength));
        total += w.ByteLength;
    }

    private static void Advise(IntPtr start, long length)
    {
        long aligned = (long)start & ~(long)(Page - 1);
        // Advice is a hint: a failure (an unusual mapping) only loses the readahead, never the weights.
        _ = MAdvise((void*)aligned, (nuint)((long)start + length - aligned), MadvWillNeed);
    }

    private static void Touch(byte* start, long length)
    {
        byte sum = 0;
        for (long offset = 0; offset < length; offset += Page) sum ^= Volatile.Read(ref start[offset]);
        sum ^= Volatile.Read(ref start[length - 1]);
        GC.KeepAlive(sum);
    }

    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static extern int MAdvise(void* address, nuint length, int advice);
}
