using Cluster.Engine.Kernels;

namespace Cluster.Engine.Tests.Kernels;

public class CpuBackendTests
{
    [Fact]
    public void TheDefaultThreadCountCannotChangeOnceTheDefaultBackendRuns()
    {
        Assert.True(CpuBackend.Default.Pool.Threads >= 1);
        var e = Assert.Throws<InvalidOperationException>(() => CpuBackend.UseDefaultThreads(1));
        Assert.Contains("already running", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuBackend.UseDefaultThreads(0));
    }
}
