using Cluster.Engine.Checkpoints;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Checkpoints;

/// <summary>
/// Prefault moves the page faults of a fresh mapping from the first read of the weights to the load: reading every
/// weight of a freshly opened checkpoint faults (the kernel maps file pages on first touch, a few at a time), and
/// after Prefault the same reads fault almost never. Counted with the process's minor faults (/proc/self/stat).
/// </summary>
public class ResidencyTests
{
    [Fact]
    public void AfterPrefaultReadingEveryWeightTakesAlmostNoPageFaults()
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("minor fault counts come from /proc/self/stat");
        using var dir = new TempDir();
        // The small preset in BF16: 85k pages, far above the faults the rest of the process takes meanwhile.
        var config = SyntheticModel.ConfigFor(SyntheticPresets.Small, DType.BF16);
        CheckpointWriter.Write(dir.Path, config, SyntheticModel.Plan(config, 0, DType.BF16), 2);

        long cold;
        using (var fresh = Checkpoint.Open(dir.Path))
            cold = FaultsWhileReading(fresh);
        long warm;
        using (var prefaulted = Checkpoint.Open(dir.Path))
        {
            var reports = new List<ByteProgress>();
            prefaulted.Prefault(new SynchronousProgress(reports));
            Assert.Equal(prefaulted.LoadedBytes, reports.Max(r => r.Done));
            Assert.All(reports, r => Assert.Equal(prefaulted.LoadedBytes, r.Total));
            warm = FaultsWhileReading(prefaulted);
        }
        long pages = 0;
        using (var c = Checkpoint.Open(dir.Path)) pages = c.LoadedBytes / 4096;
        // The kernel maps file pages many at a time (fault-around, large folios), so a cold read of 200 MB takes only
        // hundreds of faults here; at least 100 shows the count sees them at all.
        Assert.True(cold >= 100, $"reading a fresh mapping took only {cold} faults for {pages} pages; warm {warm}");
        Assert.True(warm * 20 < cold, $"after Prefault reading took {warm} faults (a fresh mapping: {cold})");
    }

    /// <summary>Minor faults while one byte of every page of every loaded weight is read.</summary>
    private static unsafe long FaultsWhileReading(Checkpoint checkpoint)
    {
        long before = MinorFaults();
        byte sum = 0;
        foreach (string name in checkpoint.Names)
        {
            Weight w = checkpoint.Get(name);
            for (long i = 0; i < w.ByteLength; i += 4096) sum ^= w.Data[i];
        }
        GC.KeepAlive(sum);
        return MinorFaults() - before;
    }

    private static long MinorFaults()
    {
        string stat = File.ReadAllText("/proc/self/stat");
        // pid (comm) state ppid ...: comm may hold spaces, so count fields after the last ')'; minflt is field 10.
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture);
    }

    private sealed class SynchronousProgress(List<ByteProgress> reports) : IProgress<ByteProgress>
    {
        public void Report(ByteProgress value)
        {
            lock (reports) reports.Add(value);
        }
    }
}
