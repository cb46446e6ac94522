namespace Cluster.Engine.Model;

/// <summary>
/// Counts the tokens routed to each logical expert of one MoE layer on their way to the experts (local or
/// remote): the one per-expert counter, behind the attention node's statistics and the next placement's
/// expert-load file. <see cref="For"/> keeps the experts' ability to overlap.
/// </summary>
public class ExpertLoadCounter(IRoutedExperts inner, long[] counts) : IRoutedExperts
{
    /// <summary>A counter over <paramref name="inner"/> that overlaps when <paramref name="inner"/> does.</summary>
    public static ExpertLoadCounter For(IRoutedExperts inner, long[] counts) =>
        inner is IOverlappedExperts overlapped ? new Overlapped(overlapped, counts) : new ExpertLoadCounter(inner, counts);

    public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null)
    {
        Count(ids);
        inner.Run(rows, n, ids, weights, output, shared);
    }

    protected void Count(ReadOnlySpan<int> ids)
    {
        foreach (int e in ids)
            if ((uint)e < (uint)counts.Length) Interlocked.Increment(ref counts[e]);
    }

    private sealed class Overlapped(IOverlappedExperts inner, long[] counts) : ExpertLoadCounter(inner, counts), IOverlappedExperts
    {
        public void Begin(int slot, ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights)
        {
            Count(ids);
            inner.Begin(slot, rows, n, ids, weights);
        }

        public void Finish(int slot, ReadOnlySpan<float> rows, int n, Span<float> output, Mlp? shared) => inner.Finish(slot, rows, n, output, shared);

        public void Abandon(int slot) => inner.Abandon(slot);
    }
}
