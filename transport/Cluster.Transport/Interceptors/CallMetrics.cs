using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
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
        output.WriteLine("# HELP cluster_grpc_server_handled_total gRPC calls completed, by method and status code.");
        output.WriteLine("# TYPE cluster_grpc_server_handled_total counter");
        foreach (var (key, totals) in _totals)
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cluster_grpc_server_handled_total{{grpc_method=\"{key.Method}\",grpc_code=\"{key.Code}\"}} {Volatile.Read(ref totals.Count)}"));
        output.WriteLine("# HELP cluster_grpc_server_handling_seconds_sum Seconds spent in completed gRPC calls, by method and status code.");
        output.WriteLine("# TYPE cluster_grpc_server_handling_seconds_sum counter");
        foreach (var (key, totals) in _totals)
        {
            double seconds;
            lock (totals) seconds = totals.Seconds;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cluster_grpc_server_handling_seconds_sum{{grpc_method=\"{key.Method}\",grpc_code=\"{key.Code}\"}} {seconds:R}"));
        }
    }

    private sealed class Totals
    {
        public long Count;
        public double Seconds;
    }
}
