namespace Cluster.ExpertNode.Client;

/// <summary>An expert node could not serve a dispatch (unreachable, stream broken, or it refused the frame).</summary>
public sealed class ExpertNodeException(string nodeId, string message, Exception? inner = null) : Exception(message, inner)
{
    public string NodeId { get; } = nodeId;
}
