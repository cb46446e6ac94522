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
    /// Locks the pages of <paramref name="weights"/> (and their FP8 scales) into memory (mlock), so that the kernel
    /// cannot reclaim them under memory pressure and a decode step never waits for the disk: mapped weights are
    /// page cache, the first thing reclaimed. It faults the pages in as it goes. Needs a memory-lock limit above the
    /// weights' size (ulimit -l) or the IPC_LOCK capability; a refusal is an error that says so.
    /// </summary>
    public static void Lock(IReadOnlyCollection<Weight> weights)
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("locking weights into memory is implemented for Linux");
        long total = 0;
        foreach (Weight w in weights) total += w.TotalBytes;
        foreach (Weight w in weights)
        {
            Lock(w, total);
            if (w.ScaleInv is { } scale) Lock(scale, total);
        }
    }

    private static void Lock(Weight w, long total)
    {
        if (w.ByteLength == 0) return;
        long start = (long)w.Data & ~(long)(Page - 1);
        if (MLock((void*)start, (nuint)((long)w.Data + w.ByteLength - start)) == 0) return;
        int errno = Marshal.GetLastPInvokeError();
        string why = errno switch { 12 => "ENOMEM", 1 => "EPERM", 11 => "EAGAIN", _ => $"errno {errno}" };
        throw new IOException($"could not lock {total / (1 << 20):N0} MiB of weights into memory ({why}, at tensor {w.Name}): "
            + "raise the memory-lock limit (ulimit -l unlimited, LimitMEMLOCK=infinity under systemd) or grant the IPC_LOCK capability");
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
        if (end <= start) return;
        // Locked pages (--lock-weights) cannot be dropped: unlocked first (a no-op on pages never locked).
        _ = MUnlock((void*)start, (nuint)(end - start));
        // Advice again: a refusal only keeps the pages resident.
        _ = MAdvise((void*)start, (nuint)(end - start), MadvDontNeed);
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

    [DllImport("libc", EntryPoint = "mlock", SetLastError = true)]
    private static extern int MLock(void* address, nuint length);

    [DllImport("libc", EntryPoint = "munlock", SetLastError = true)]
    private static extern int MUnlock(void* address, nuint length);
}
