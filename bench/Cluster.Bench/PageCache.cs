using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Cluster.Bench;

/// <summary>
/// How much of a checkpoint's files the kernel's page cache holds (mincore over a mapping of each file), and a way
/// to drop them from it (posix_fadvise DONTNEED, which needs no privilege for clean pages no one maps), so that a
/// benchmark can say whether its first tokens read from memory or from the disk. Linux only.
/// </summary>
internal static unsafe class PageCache
{
    private const int ProtRead = 1, MapShared = 1, FadvDontNeed = 4;

    /// <summary>Bytes of <paramref name="files"/> in the page cache, and their total size.</summary>
    public static (long Resident, long Total) Residency(IEnumerable<string> files)
    {
        long resident = 0, total = 0;
        long page = Environment.SystemPageSize;
        foreach (string path in files)
        {
            using SafeFileHandle handle = File.OpenHandle(path);
            long length = RandomAccess.GetLength(handle);
            total += length;
            if (length == 0) continue;
            void* map = MMap(null, (nuint)length, ProtRead, MapShared, (int)handle.DangerousGetHandle(), 0);
            if (map == (void*)-1) throw new IOException($"{path}: mmap failed (errno {Marshal.GetLastPInvokeError()})");
            try
            {
                long pages = (length + page - 1) / page;
                byte[] vector = new byte[pages];
                fixed (byte* v = vector)
                    if (MInCore(map, (nuint)length, v) != 0) throw new IOException($"{path}: mincore failed (errno {Marshal.GetLastPInvokeError()})");
                long count = 0;
                foreach (byte b in vector) count += b & 1;
                resident += Math.Min(length, count * page);
            }
            finally { _ = MUnmap(map, (nuint)length); }
        }
        return (resident, total);
    }

    /// <summary>Asks the kernel to drop <paramref name="files"/>' clean pages from its cache.</summary>
    public static void Evict(IEnumerable<string> files)
    {
        foreach (string path in files)
        {
            using SafeFileHandle handle = File.OpenHandle(path);
            int error = PosixFadvise((int)handle.DangerousGetHandle(), 0, 0, FadvDontNeed);
            if (error != 0) throw new IOException($"{path}: posix_fadvise(DONTNEED) failed (errno {error})");
        }
    }

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern void* MMap(void* address, nuint length, int protection, int flags, int fd, long offset);

    [DllImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static extern int MUnmap(void* address, nuint length);

    [DllImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static extern int MInCore(void* address, nuint length, byte* vector);

    [DllImport("libc", EntryPoint = "posix_fadvise")]
    private static extern int PosixFadvise(int fd, long offset, long length, int advice);
}
