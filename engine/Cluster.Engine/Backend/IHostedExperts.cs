using Cluster.Engine.Model;

namespace Cluster.Engine.Backend;

/// <summary>One MoE layer's routed experts loaded on this node, some or all of them.</summary>
public interface IHostedExperts : IRoutedExperts
{
    int Layer { get; }

    /// <summary>Whether expert <paramref name="expert"/>'s weights are loaded here.</summary>
    bool Hosts(int expert);
}
