namespace Cluster.Engine.Model;

/// <summary>
/// The routed experts of one MoE layer as the layer sees them: loaded here (<see cref="RoutedExperts"/>) or
/// hosted on expert nodes and reached through dispatch/combine, so the engine never knows which.
/// </summary>
public interface IRoutedExperts
{
    /// <summary>
    /// output[r] = Σ_k weights[r, k] · expert_{ids[r, k]}(rows[r]) for n rows with k = ids.Length / n choices each;
    /// negative ids are padding. A <paramref name="shared"/> expert, when given, is added for every row after the
    /// routed sum; the implementation runs it wherever it hides best (in the same parallel pass as local experts,
    /// or while remote experts' rows are on the wire).
    /// </summary>
    void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null);
}
