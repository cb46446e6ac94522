namespace Cluster.Transport;

/// <summary>
/// A Prometheus histogram of seconds over fixed bucket bounds: each observation lands in the first bucket whose bound
/// holds it; written out cumulative (<c>_bucket{le=...}</c> up to <c>+Inf</c>, then <c>_sum</c> and <c>_count</c>).
/// One observation per request: a lock keeps the buckets, sum and count of a scrape consistent, at little cost.
/// </summary>
public sealed class LatencyHistogram(string name, string help, double[] bounds)
{
    private readonly long[] _counts = new long[bounds.Length + 1];
    private readonly Lock _lock = new();
    private double _sum;

    public string Name { get; } = name;

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

    public void Write(TextWriter output)
    {
        long[] counts;
        double sum;
        lock (_lock)
        {
            counts = (long[])_counts.Clone();
            sum = _sum;
        }
        PrometheusText.Family(output, Name, "histogram", help);
        long cumulative = 0;
        for (int i = 0; i <= bounds.Length; i++)
        {
            cumulative += counts[i];
            double le = i < bounds.Length ? bounds[i] : double.PositiveInfinity;
            PrometheusText.Sample(output, Name + "_bucket", PrometheusText.Label("le", PrometheusText.Number(le)), cumulative);
        }
        PrometheusText.Sample(output, Name + "_sum", "", sum);
        PrometheusText.Sample(output, Name + "_count", "", cumulative);
    }
}
