using Cluster.Engine.Backend;
using Cluster.Engine.Cache;
using Cluster.Engine.Config;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Backend;

/// <summary>
/// A second <see cref="IBackend"/>, in float64: what a CUDA backend folder would provide, written as plainly as
/// possible, so that the engine's seam is proven by something other than the CPU code it was cut from.
/// </summary>
internal sealed class ReferenceBackend : IBackend
{
    public string Name => "reference-f64";

    public IKernels Kernels { get; } = new ReferenceKernels();

    public ILatentBlocks CreateLatentBlocks(int blocks, int blockSize, int layers, int rowSize, LatentFormat format) =>
        new ReferenceLatentBlocks(blocks, blockSize, layers, rowSize, format);

    public IHostedExperts LoadExperts(ITensorSource source, ModelConfig config, int layer, IEnumerable<int>? hosted = null) =>
        ReferenceExperts.Load(source, layer, config.HiddenSize, config.MoeIntermediateSize, config.NRoutedExperts, hosted);
}
