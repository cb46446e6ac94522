using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Grpc.Core;

namespace Cluster.Transport;

/// <summary>
/// Counts and latencies of the calls a role served, per method and status code: as System.Diagnostics.Metrics
/// instruments (meter "Cluster.Transport", for OpenTelemetry) and as Prometheus text for the roles' /metrics.
/// </summary>
public sealed class CallMetrics
{
    public const string MeterName = "Cluster.Transport";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Calls = Meter.CreateCounter<long>("rpc.server.calls", description: "gRPC calls handled");
    private static readonly Histogram<double> Duration = Meter.CreateHistogram<double>("rpc.server.duration", unit: "s", description: "gRPC call duration");

    private readonly ConcurrentDictionary<(string Method, StatusCode Code), Totals> _totals = new();

    public void Record(string method, StatusCode code, TimeSpan elapsed)
    {
        var tags = new TagList { { "rpc.method", method }, { "rpc.grpc.status_code", (int)code } };
        Calls.Add(1, tags);
        Duration.Record(elapsed.TotalSeconds, tags);
        var totals = _totals.GetOrAdd((method, code), static _ => new Totals());
        lock (totals)
        {
            totals.Count++;
            totals.Seconds += elapsed.TotalSeconds;
        }
    }

    /// <summary>How many calls to <paramref name="method"/> ended with <paramref name="code"/>.</summary>
    public long Count(string method, StatusCode code) => _totals.TryGetValue((method, code), out var t) ? Volatile.Read(ref t.Count) : 0;

    /// <summary>cluster_grpc_server_handled_total and cluster_grpc_server_handling_seconds_sum, one series per method and code.</summary>
    public void WritePrometheus(TextWriter output)
    {
        PrometheusText.Family(output, "cluster_grpc_server_handled_total", "counter", "gRPC calls completed, by method and status code.");
        foreach (var (key, totals) in _totals)
            PrometheusText.Sample(output, "cluster_grpc_server_handled_total", Labels(key), Volatile.Read(ref totals.Count));
        PrometheusText.Family(output, "cluster_grpc_server_handling_seconds_sum", "counter", "Seconds spent in completed gRPC calls, by method and status code.");
        foreach (var (key, totals) in _totals)
        {
            double seconds;
            lock (totals) seconds = totals.Seconds;
            PrometheusText.Sample(output, "cluster_grpc_server_handling_seconds_sum", Labels(key), seconds);
        }
    }

    private static string Labels((string Method, StatusCode Code) key) =>
        PrometheusText.Label("grpc_method", key.Method) + "," + PrometheusText.Label("grpc_code", key.Code.ToString());

    private sealed class Totals
    {
        public long Count;
        public double Seconds;
    }
}
