using Cluster.Transport;
using System.Globalization;
using Cluster.Gateway.Metrics;

namespace Cluster.Gateway.Tests;

/// <summary>The gateway's Prometheus text: a histogram's buckets are "less or equal" and cumulative; label values are escaped.</summary>
public sealed class PrometheusTextTests
{
    [Fact]
    public void A_histogram_counts_each_observation_in_every_bucket_at_or_above_it()
    {
        var h = new LatencyHistogram("test_seconds", "A test.", [0.1, 1, 10]);
        foreach (double s in new[] { 0.05, 0.1, 0.5, 1, 3, 20 }) h.Observe(TimeSpan.FromSeconds(s));
        using var text = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        h.Write(text);
        PrometheusScrape scrape = PrometheusScrape.Parse(text.ToString());
        Assert.Equal(6, scrape.Histogram("test_seconds"));
        Assert.Equal(2, scrape.Value("test_seconds_bucket", ("le", "0.1")));
        Assert.Equal(4, scrape.Value("test_seconds_bucket", ("le", "1")));
        Assert.Equal(5, scrape.Value("test_seconds_bucket", ("le", "10")));
        Assert.Equal(6, scrape.Value("test_seconds_bucket", ("le", "+Inf")));
        Assert.Equal(24.65, scrape.Value("test_seconds_sum"), 9);
    }

    [Fact]
    public void Label_values_are_escaped()
    {
        Assert.Equal("""key="a\\b\"c\nd" """.TrimEnd(), PrometheusText.Label("key", "a\\b\"c\nd"));
        using var text = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        PrometheusText.Family(text, "x_total", "counter", "X.");
        PrometheusText.Sample(text, "x_total", PrometheusText.Label("key", "we\"ird\\name"), 3);
        Assert.Equal("we\"ird\\name", Assert.Single(PrometheusScrape.Parse(text.ToString()).Samples).Labels["key"]);
    }
}
