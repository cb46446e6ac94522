using Cluster.Engine.Cache;

namespace Cluster.Engine.Tests.Cache;

/// <summary>
/// Reserve makes the whole latent block memory resident at once (what a serving node does at start, so its memory
/// stays flat afterwards), and leaves the rows of blocks already in use as they were.
/// </summary>
public class LatentReserveTests
{
    [Fact]
    public void ReserveMakesEveryBlockResidentAndKeepsWrittenRows()
    {
        const int blocks = 256, blockSize = 64, layers = 4, rowSize = 256;
        var memory = new CpuLatentBlocks(blocks, blockSize, layers, rowSize, LatentFormat.F32);
        long bytes = (long)blocks * blockSize * layers * rowSize * sizeof(float);
        var row = new float[rowSize];
        for (int i = 0; i < rowSize; i++) row[i] = i + 0.5f;
        memory.Write(2, 5 * blockSize + 3, row);

        long before = Rss();
        memory.Reserve();
        long grown = Rss() - before;
        Assert.True(grown > bytes * 0.9, $"resident memory grew {grown:N0} bytes for {bytes:N0} bytes of blocks");

        var back = new float[rowSize];
        memory.Read(2, 5 * blockSize + 3, 1, back);
        Assert.Equal(row, back);
        GC.KeepAlive(memory);
    }

    private static long Rss()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        throw new InvalidOperationException("no VmRSS in /proc/self/status");
    }
}
