using System.ComponentModel.DataAnnotations;

namespace Cluster.Gateway.Nodes;

/// <summary>How many requests the gateway gives each attention node and how many it holds waiting for room.</summary>
public sealed class AdmissionOptions
{
    /// <summary>Requests in flight per generating node (running + queued there) before new ones wait in the gateway's queue.</summary>
    [Range(1, int.MaxValue)]
    public int MaxInFlightPerNode { get; set; } = 256;
    /// <summary>Requests waiting in the gateway for room on a node before new ones are refused (QueueFull).</summary>
    [Range(0, int.MaxValue)]
    public int MaxQueued { get; set; } = 1024;
}
