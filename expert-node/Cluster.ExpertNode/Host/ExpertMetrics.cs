using Cluster.Transport;

namespace Cluster.ExpertNode.Host;

/// <summary>
/// An expert node's figures in Prometheus' text format (GET /metrics on its HTTP port): how long each dispatch frame
/// took to serve (decode, run every hosted expert of its rows, encode; the node's share of an attention node's round
/// trip), rows served, and the rows each hosted expert has computed; then the gRPC calls' own metrics.
/// </summary>
public sealed class ExpertMetrics(string nodeId)
{
    private static readonly double[] Bounds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

    private readonly LatencyHistogram _frames = new("cluster_expert_dispatch_frame_seconds",
        "Time to serve one dispatch frame (decode rows, run the hosted experts, encode the partial sums).", Bounds);
    private readonly string _node = PrometheusText.Label("node", nodeId);
    private long _frameCount;

    public long Frames => Interlocked.Read(ref _frameCount);

    public void Frame(TimeSpan served)
    {
        _frames.Observe(served);
        Interlocked.Increment(ref _frameCount);
    }

    public void Write(TextWriter output, HostedExperts experts, CallMetrics calls)
    {
        _frames.Write(output);
        PrometheusText.Family(output, "cluster_expert_rows_total", "counter", "Rows (token, expert) pairs this node has computed.");
        PrometheusText.Sample(output, "cluster_expert_rows_total", _node, experts.RowsServed);
        PrometheusText.Family(output, "cluster_expert_slot_rows_total", "counter", "Rows each hosted expert has computed, by MoE layer and expert.");
        foreach (var (layer, expert, tokens) in experts.Slots())
            PrometheusText.Sample(output, "cluster_expert_slot_rows_total",
                $"{_node},{PrometheusText.Label("layer", layer.ToString(System.Globalization.CultureInfo.InvariantCulture))},{PrometheusText.Label("expert", expert.ToString(System.Globalization.CultureInfo.InvariantCulture))}", tokens);
        calls.WritePrometheus(output);
    }
}
