namespace Cluster.AttentionNode.Scheduling;

/// <summary>Why the scheduler refused or failed a request, whatever transport the request came through.</summary>
public enum GenerationFailureKind
{
    /// <summary>The request's whole context does not fit the latent cache now (or ever).</summary>
    ResourceExhausted,
    /// <summary>The node is shutting down; another node can take the request.</summary>
    ShuttingDown,
    /// <summary>Routed experts hosted elsewhere could not answer: a peer is down, not a bug here (its stream reopens on the next step).</summary>
    ExpertsUnavailable,
    /// <summary>The model or this node failed.</summary>
    Internal,
}

/// <summary>
/// A request the scheduler refused (thrown by its Submit methods) or failed (what the request's output stream ends
/// with); the service that took the request maps <see cref="Kind"/> to its status. A cancelled request ends with
/// an <see cref="OperationCanceledException"/> instead, as the caller's own token does.
/// </summary>
public sealed class GenerationFailure(GenerationFailureKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public GenerationFailureKind Kind { get; } = kind;
}
