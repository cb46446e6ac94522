using Cluster.Engine.Model;

namespace Cluster.AttentionNode;

/// <summary>The routed experts of every MoE layer, hosted on expert nodes and reached by dispatch/combine.</summary>
public interface IRemoteExperts : IAsyncDisposable
{
    IRoutedExperts ForLayer(int layer);
}
