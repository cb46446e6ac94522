namespace Cluster.Engine.Model;

/// <summary>
/// Counts the tokens routed to each logical expert of one MoE layer on their way to the experts (local or
/// remote): the one per-expert counter, behind the attention node's statistics and the next placement's
/// expert-load file.
/// </summary>
public sealed class ExpertLoadCounter(IRoutedExperts inner, long[] counts) : IRoutedExperts
{
    public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null)
    {
        foreach (int e in ids)
            if ((uint)e < (uint)counts.Length) Interlocked.Increment(ref counts[e]);
        inner.Run(rows, n, ids, weights, output, shared);
    }
}
