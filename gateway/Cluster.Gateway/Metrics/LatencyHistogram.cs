namespace Cluster.Gateway.Metrics;

/// <summary>
/// A Prometheus histogram of seconds over fixed bucket bounds: each observation lands in the first bucket whose bound
/// holds it; written out cumulative (<c>_bucket{le=...}</c> up to <c>+Inf</c>, then <c>_sum</c> and <c>_count</c>).
/// One observation per request, so a lock is cheaper than it is simple.
/// </summary>
public sealed class LatencyHistogram(string name, string help, double[] bounds)
{
    private readonly long[] _counts = new long[bounds.Length + 1];
    private readonly Lock _lock = new();
    private double _sum;

    public string Name { get; } = name;
    public IReadOnlyList<double> Bounds => bounds;

    public void Observe(TimeSpan elapsed)
    {
        double seconds = elapsed.TotalSeconds;
        int bucket = 0;
        while (bucket < bounds.Length && seconds > bounds[bucket]) bucket++;
        lock (_lock)
        {
            _counts[bucket]++;
            _sum += seconds;
        }
    }

    public long Count
    {
        get
        {
            lock (_lock)
            {
                long total = 0;
                foreach (long c in _counts) total += c;
                return total;
            }
        }
    }

    public void Write(TextWriter output, string labels = "")
    {
        long[] counts;
        double sum;
        lock (_lock)
        {
            counts = (long[])_counts.Clone();
            sum = _sum;
        }
        PrometheusText.Family(output, Name, "histogram", help);
        string prefix = labels.Length > 0 ? labels + "," : "";
        long cumulative = 0;
        for (int i = 0; i <= bounds.Length; i++)
        {
            cumulative += counts[i];
            double le = i < bounds.Length ? bounds[i] : double.PositiveInfinity;
            PrometheusText.Sample(output, Name + "_bucket", prefix + PrometheusText.Label("le", PrometheusText.Number(le)), cumulative);
        }
        PrometheusText.Sample(output, Name + "_sum", labels, sum);
        PrometheusText.Sample(output, Name + "_count", labels, cumulative);
    }
}
