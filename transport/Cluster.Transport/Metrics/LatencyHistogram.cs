namespace Cluster.Transport;

/// <summary>
/// A Prometheus histogram of seconds over fixed bucket bounds: each observation lands in the first bucket whose bound
/// holds it; written out cumulative (<c>_bucket{le=...}</c> up to <c>+Inf</c>, then <c>_sum</c> and <c>_count</c>).
/// A lock keeps the buckets, sum and count of a scrape consistent, at little cost next to what is timed (a request,
/// a dispatch round trip).
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

    public void Write(TextWriter output) => Write(output, "", header: true);

    /// <summary>
    /// Writes the series with <paramref name="labels"/> (written as <see cref="PrometheusText.Label"/> makes them) on
    /// each line; <paramref name="header"/> false for the second and later series of one family.
    /// </summary>
    public void Write(TextWriter output, string labels, bool header)
    {
        long[] counts;
        double sum;
        lock (_lock)
        {
            counts = (long[])_counts.Clone();
            sum = _sum;
        }
        if (header) PrometheusText.Family(output, Name, "histogram", help);
        string prefix = labels.Length == 0 ? "" : labels + ",";
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
