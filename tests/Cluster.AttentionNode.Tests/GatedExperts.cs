using Cluster.Engine.Model;

namespace Cluster.AttentionNode.Tests;

/// <summary>Routed experts that wait for the test's signal, holding the engine thread inside a forward pass.</summary>
internal sealed class GatedExperts(IRoutedExperts inner, ManualResetEventSlim gate) : IRoutedExperts
{
    public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null)
    {
        gate.Wait();
        inner.Run(rows, n, ids, weights, output, shared);
    }
}
