using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Backend;

/// <summary>
/// How a node hosts routed experts: loads the slots of one MoE layer it is given and runs them on rows that
/// dispatch brings (an expert node) or on its own tokens (one process holding the whole model). The CPU's is
/// <see cref="RoutedExperts"/>; a GPU expert backend would upload the slots' weights once and run each step's
/// experts as grouped GEMMs, behind the same <see cref="IRoutedExperts.Run"/> contract: padding ids skipped,
/// the weighted partial sum over the rows' hosted experts returned, so several hosts' sums add up.
/// </summary>
public interface IExpertBackend
{
    /// <summary>"model.layers.{layer}.mlp.experts.{e}.*" for each e in <paramref name="hosted"/> (all when null).</summary>
    IHostedExperts LoadExperts(ITensorSource source, ModelConfig config, int layer, IEnumerable<int>? hosted = null);
}
