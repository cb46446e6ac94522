using System.Collections.Concurrent;
using Cluster.Transport;

namespace Cluster.ExpertNode.Client;

/// <summary>
/// The attention node's side of dispatch in Prometheus' text format: one histogram of round trips per expert node,
/// from a frame's write to its combine, so an operator sees which node is slow. The expert node's own share (decode,
/// compute, encode) is its <c>cluster_expert_dispatch_frame_seconds</c>; the difference is the wire and the queues.
/// </summary>
public sealed class DispatchMetrics
{
    public const string RoundTrip = "cluster_attention_dispatch_round_trip_seconds";
    private const string Help = "Time from writing a dispatch frame to an expert node to reading its combine, by expert node.";
    private static readonly double[] Bounds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

    private readonly ConcurrentDictionary<string, LatencyHistogram> _byNode = new();

    /// <summary>The histogram of one expert node, made on its first use (a node added by a plan change gets its own).</summary>
    internal LatencyHistogram For(string nodeId) => _byNode.GetOrAdd(nodeId, static _ => new LatencyHistogram(RoundTrip, Help, Bounds));

    public void Write(TextWriter output)
    {
        bool header = true;
        foreach (var (node, histogram) in _byNode.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            histogram.Write(output, PrometheusText.Label("expert_node", node), header);
            header = false;
        }
    }
}
