namespace Cluster.ExpertNode.Client;

/// <summary>An expert node could not serve a dispatch (unreachable, stream broken, or it refused the frame).</summary>
public sealed class ExpertNodeException(string nodeId, string message, Exception? inner = null, bool lost = false) : Engine.Model.RoutedExpertsUnavailableException(message, inner)
{
    public string NodeId { get; } = nodeId;
    /// <summary>The node itself failed (stream broken, no answer in time), as opposed to refusing one frame: its rows may go to replicas.</summary>
    public bool Lost { get; } = lost;
}
