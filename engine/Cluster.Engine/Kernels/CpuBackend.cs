using Cluster.Engine.Backend;
using Cluster.Engine.Cache;
using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Kernels;

/// <summary>
/// The CPU backend: <see cref="CpuKernels"/> on a <see cref="WorkerPool"/> it owns. <see cref="Default"/> (one
/// thread per core) serves every caller that names no backend; a test or a benchmark that wants its own thread
/// count makes its own.
/// </summary>
public sealed class CpuBackend : IBackend
{
    private static readonly Lazy<CpuBackend> s_default = new(() => new CpuBackend(Environment.ProcessorCount));

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
