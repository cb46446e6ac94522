using Cluster.Engine.Cache;

namespace Cluster.Engine.Backend;

/// <summary>
/// Where the model's arithmetic runs. The CPU backend (<see cref="Kernels.CpuBackend"/>) is the engine's
/// Kernels/ folder; another (a CUDA one: the driver API, NVRTC and cuBLAS through P/Invoke) is a new folder
/// implementing these interfaces, chosen where the model is loaded. Every backend can host routed experts too.
/// </summary>
public interface IBackend : IExpertBackend
{
    /// <summary>A short name for logs and benchmarks ("cpu").</summary>
    string Name { get; }

    IKernels Kernels { get; }

    /// <summary>The block memory of a paged latent cache of <paramref name="blocks"/> blocks (<see cref="LatentCacheManager"/>).</summary>
    ILatentBlocks CreateLatentBlocks(int blocks, int blockSize, int layers, int rowSize, LatentFormat format);
}
