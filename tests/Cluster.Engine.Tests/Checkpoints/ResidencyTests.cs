using Cluster.Engine.Checkpoints;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Checkpoints;

/// <summary>
/// Prefault moves the page faults of a fresh mapping from the first read of the weights to the load: reading every
/// weight of a freshly opened checkpoint faults (the kernel maps file pages on first touch, a few at a time), and
/// after Prefault the same reads fault almost never. Counted with the process's minor faults (/proc/self/stat). Evict
/// gives a weight's pages back without losing a byte.
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

    [Fact]
    public unsafe void EvictGivesBackAWeightsPagesAndKeepsItsBytes()
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("resident pages come from /proc/self/smaps");
        using var dir = new TempDir();
        using Checkpoint checkpoint = SmallCheckpoint(dir);
        string largest = checkpoint.Names.MaxBy(n => checkpoint.Get(n).ByteLength)!;
        Weight w = checkpoint.Get(largest);
        Residency.Prefault([w]);
        long sum = Sum(w), before = MappingRssKb((nint)w.Data);

        checkpoint.Evict(largest);
        long after = MappingRssKb((nint)w.Data);
        Assert.True(before - after >= w.ByteLength / 1024 * 9 / 10, $"{largest} ({w.ByteLength / 1024} kB): its mapping held {before} kB before, {after} kB after");
        // A read-only file mapping: the bytes come back from the page cache.
        Assert.Equal(sum, Sum(w));
        Assert.True(MappingRssKb((nint)w.Data) >= before - 8, "the read brought the pages back");
    }

    [Fact]
    public unsafe void LockKeepsAWeightsPagesLockedUntilEvictUnlocksAndDropsThem()
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("locked pages come from /proc/self/smaps");
        using var dir = new TempDir();
        using Checkpoint checkpoint = SmallCheckpoint(dir);
        // One of the routed experts' matrices: small enough for the memory-lock limit a process has without privileges.
        string name = checkpoint.Names.First(n => n.Contains(".mlp.experts.0.down_proj.", StringComparison.Ordinal));
        Weight w = checkpoint.Get(name);
        try { Residency.Lock([w]); }
        catch (IOException e)
        {
            // Without the IPC_LOCK capability and under a small limit, the refusal says what to change.
            Assert.Contains("raise the memory-lock limit", e.Message);
            Assert.Contains("IPC_LOCK", e.Message);
            return;
        }
        long locked = Field((nint)w.Data, "Locked:");
        Assert.True(locked >= w.ByteLength / 1024, $"{name} ({w.ByteLength / 1024} kB): {locked} kB of its mapping locked");
        checkpoint.Evict(name);
        Assert.True(Field((nint)w.Data, "Locked:") <= locked - w.ByteLength / 1024 * 9 / 10, "Evict unlocked the weight's pages");
    }

    /// <summary>The small preset in BF16, written to <paramref name="dir"/> and opened.</summary>
    private static Checkpoint SmallCheckpoint(TempDir dir)
    {
        var config = SyntheticModel.ConfigFor(SyntheticPresets.Small, DType.BF16);
        CheckpointWriter.Write(dir.Path, config, SyntheticModel.Plan(config, 0, DType.BF16), 2);
        return Checkpoint.Open(dir.Path);
    }

    private static unsafe long Sum(Weight w)
    {
        long sum = 0;
        for (long i = 0; i < w.ByteLength; i++) sum += w.Data[i];
        return sum;
    }

    /// <summary>The Rss of the mapping (a /proc/self/smaps entry) that holds <paramref name="address"/>, in kB.</summary>
    private static long MappingRssKb(nint address) => Field(address, "Rss:");

    /// <summary>A kB field (Rss:, Locked:) of the /proc/self/smaps entry of the mapping that holds <paramref name="address"/>.</summary>
    private static long Field(nint address, string field)
    {
        bool inside = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            int space = line.IndexOf(' ');
            if (dash > 0 && space > dash && ulong.TryParse(line.AsSpan(0, dash), System.Globalization.NumberStyles.HexNumber, null, out ulong start)
                && ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), System.Globalization.NumberStyles.HexNumber, null, out ulong end))
            {
                inside = (ulong)address >= start && (ulong)address < end;
                continue;
            }
            if (inside && line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line.AsSpan(field.Length).Trim().TrimEnd("kB").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }
        throw new InvalidOperationException($"no mapping holds 0x{address:x}");
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
