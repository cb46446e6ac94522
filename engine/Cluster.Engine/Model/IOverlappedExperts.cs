namespace Cluster.Engine.Model;

/// <summary>
/// Routed experts that work while the caller does something else (expert nodes reached over the network): a
/// micro-batch's rows are sent by <see cref="Begin"/> and its sum collected by <see cref="Finish"/>, so the
/// transformer can run the other micro-batch's attention in between (DeepSeek's dual micro-batch overlap). Two
/// micro-batches (slots 0 and 1) may be in flight at once, each begun and finished in turn.
/// </summary>
public interface IOverlappedExperts : IRoutedExperts
{
    /// <summary>Sends micro-batch <paramref name="slot"/>'s rows to their experts; returns without waiting for them.</summary>
    void Begin(int slot, ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights);

    /// <summary>
    /// Waits for what <see cref="Begin"/> sent (re-sending a lost node's rows, so it needs the same rows again) and
    /// writes the routed sum, plus <paramref name="shared"/>'s output when given, to <paramref name="output"/>.
    /// </summary>
    void Finish(int slot, ReadOnlySpan<float> rows, int n, Span<float> output, Mlp? shared);

    /// <summary>After a failure elsewhere in the pass: waits out slot's exchanges still in flight and drops them.</summary>
    void Abandon(int slot);
}
