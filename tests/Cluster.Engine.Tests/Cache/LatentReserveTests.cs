using System.Reflection;
using System.Runtime.InteropServices;
using Cluster.Engine.Cache;

namespace Cluster.Engine.Tests.Cache;

/// <summary>
/// Reserve makes the whole latent block memory resident at once (what a serving node does at start, so its memory
/// stays flat afterwards), and leaves the rows of blocks already in use as they were. Residency is asked of the kernel
/// page by page (mincore), not read off the process's resident size, which other tests running beside this one move.
/// </summary>
public class LatentReserveTests
{
    [Fact]
    public void ReserveMakesEveryBlockResidentAndKeepsWrittenRows()
    {
        const int blocks = 256, blockSize = 64, layers = 4, rowSize = 256;
        var memory = new CpuLatentBlocks(blocks, blockSize, layers, rowSize, LatentFormat.F32);
        var row = new float[rowSize];
        for (int i = 0; i < rowSize; i++) row[i] = i + 0.5f;
        memory.Write(2, 5 * blockSize + 3, row);
        Assert.Equal(1, Allocated(memory).Count(b => b != 0));

        memory.Reserve();
        nint[] blocksMemory = Allocated(memory);
        Assert.All(blocksMemory, b => Assert.NotEqual(0, b));
        long blockBytes = (long)blockSize * layers * rowSize * sizeof(float);
        long resident = 0, pages = 0;
        foreach (nint block in blocksMemory)
        {
            var (r, p) = ResidentPages(block, blockBytes);
            resident += r;
            pages += p;
        }
        Assert.True(resident >= pages * 0.99, $"{resident} of {pages} pages of the reserved blocks are resident");

        var back = new float[rowSize];
        memory.Read(2, 5 * blockSize + 3, 1, back);
        Assert.Equal(row, back);
    }

    private static nint[] Allocated(CpuLatentBlocks memory) =>
        (nint[])typeof(CpuLatentBlocks).GetField("_blocks", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(memory)!;

    /// <summary>The whole pages inside [<paramref name="start"/>, + <paramref name="length"/>), and how many of them are in memory.</summary>
    private static unsafe (long Resident, long Pages) ResidentPages(nint start, long length)
    {
        long page = Environment.SystemPageSize;
        long end = start + length;
        long first = (start + page - 1) / page * page, last = end / page * page;
        long count = (last - first) / page;
        var vec = new byte[count];
        fixed (byte* v = vec)
            Assert.True(MinCore((nint)first, (nuint)(last - first), v) == 0, $"mincore failed: {Marshal.GetLastPInvokeError()}");
        long resident = 0;
        foreach (byte b in vec) resident += b & 1;
        return (resident, count);
    }

    [DllImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static extern unsafe int MinCore(nint addr, nuint length, byte* vec);
}
