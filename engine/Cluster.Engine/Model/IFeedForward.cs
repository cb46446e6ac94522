namespace Cluster.Engine.Model;

/// <summary>The second half of a decoder layer: a dense MLP or a mixture of experts, over rows of hidden_size.</summary>
public interface IFeedForward
{
    /// <summary>y[n, hidden] = f(x[n, hidden]); y is overwritten.</summary>
    void Forward(ReadOnlySpan<float> x, int n, Span<float> y);
}
