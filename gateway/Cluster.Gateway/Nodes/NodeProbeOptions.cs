using System.ComponentModel.DataAnnotations;

namespace Cluster.Gateway.Nodes;

/// <summary>How the gateway watches its attention nodes: statistics every interval, each answer waited for up to a timeout.</summary>
public sealed class NodeProbeOptions
{
    /// <summary>How often every node's statistics (cache blocks, role) are refreshed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan StatsInterval { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>How long /readyz, /cluster/status and the statistics refresh wait for each node's answer.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>The cluster's credential, put on every call to a node; null when the nodes ask for none.</summary>
    public Cluster.Transport.ClusterToken? ClusterToken { get; set; }
}
