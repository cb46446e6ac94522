using Cluster.Engine.Kernels;

namespace Cluster.Engine.Tests.Kernels;

public class WorkerPoolTests
{
    private sealed class Marks(int n, int failAt = -1) : IRangeBody
    {
        public readonly int[] Hits = new int[n];

        public void Run(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                if (i == failAt) throw new InvalidOperationException($"item {i} failed");
                Interlocked.Increment(ref Hits[i]);
            }
        }
    }

    [Fact]
    public void EveryItemRunsExactlyOnceAcrossManyLoops()
    {
        var pool = new WorkerPool(3);
        for (int loop = 0; loop < 200; loop++)
        {
            var marks = new Marks(37 + loop % 50);
            pool.For(marks.Hits.Length, 1, marks);
            Assert.All(marks.Hits, h => Assert.Equal(1, h));
        }
    }

    [Fact]
    public void FailureReachesTheCallerAndThePoolKeepsWorking()
    {
        var pool = new WorkerPool(2);
        var e = Assert.Throws<InvalidOperationException>(() => pool.For(100, 1, new Marks(100, failAt: 63)));
        Assert.Equal("item 63 failed", e.Message);
        var marks = new Marks(100);
        pool.For(100, 1, marks);
        Assert.All(marks.Hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void LoopsFromSeveralCallersOnMoreThreadsThanCoresEachRunEveryItemOnce()
    {
        // Workers woken for one loop often run only after it ended; they must never run a chunk of the next one.
        var pool = new WorkerPool(Environment.ProcessorCount * 4);
        var callers = new Thread[3];
        var failures = new int[callers.Length];
        for (int c = 0; c < callers.Length; c++)
        {
            int caller = c;
            callers[c] = new Thread(() =>
            {
                for (int loop = 0; loop < 5000; loop++)
                {
                    var marks = new Marks(8 + (loop * 7 + caller) % 90);
                    pool.For(marks.Hits.Length, 1, marks);
                    foreach (int h in marks.Hits) if (h != 1) failures[caller]++;
                }
            });
            callers[c].Start();
        }
        foreach (Thread t in callers) t.Join();
        Assert.All(failures, f => Assert.Equal(0, f));
    }
}
