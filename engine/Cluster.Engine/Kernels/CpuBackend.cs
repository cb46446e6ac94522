using Cluster.Engine.Backend;
using Cluster.Engine.Cache;
using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Kernels;

/// <summary>
/// The CPU backend: <see cref="CpuKernels"/> on a <see cref="WorkerPool"/> it owns. <see cref="Default"/> (one
/// thread per core the process may use, unless <see cref="UseDefaultThreads"/> said otherwise) serves every caller
/// that names no backend; a test or a benchmark that wants its own thread count makes its own.
/// </summary>
public sealed class CpuBackend : IBackend
{
    private static int s_defaultThreads = Environment.ProcessorCount;
    private static readonly Lazy<CpuBackend> s_default = new(() => new CpuBackend(Volatile.Read(ref s_defaultThreads)));

    /// <summary>
    /// Sets the thread count of <see cref="Default"/>, before anything uses it. Roles that share a machine's cores
    /// (cluster up) each take a share: more kernel threads than cores make every parallel loop wait for a thread
    /// the scheduler has parked.
    /// </summary>
    public static void UseDefaultThreads(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        if (s_default.IsValueCreated) throw new InvalidOperationException("the default CPU backend is already running; set its threads before the model loads");
        Volatile.Write(ref s_defaultThreads, threads);
    }

    public CpuBackend(int threads)
    {
        Pool = new WorkerPool(threads);
        Kernels = new CpuKernels(Pool);
    }

    public static CpuBackend Default => s_default.Value;

    public string Name => "cpu";

    public WorkerPool Pool { get; }

    public CpuKernels Kernels { get; }

    IKernels IBackend.Kernels => Kernels;

    public ILatentBlocks CreateLatentBlocks(int blocks, int blockSize, int layers, int rowSize, LatentFormat format) =>
        new CpuLatentBlocks(blocks, blockSize, layers, rowSize, format);

    public IHostedExperts LoadExperts(ITensorSource source, ModelConfig config, int layer, IEnumerable<int>? hosted = null) =>
        RoutedExperts.Load(source, config, layer, hosted, Kernels);
}
