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

    [Fact]
    public void Labelled_histograms_of_one_family_share_its_header_and_keep_their_series_apart()
    {
        var a = new LatencyHistogram("rt_seconds", "Round trips.", [0.001, 0.01]);
        var b = new LatencyHistogram("rt_seconds", "Round trips.", [0.001, 0.01]);
        a.Observe(TimeSpan.FromMilliseconds(0.5));
        b.Observe(TimeSpan.FromMilliseconds(5));
        b.Observe(TimeSpan.FromMilliseconds(50));
        using var text = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        a.Write(text, PrometheusText.Label("expert_node", "expert-0"), header: true);
        b.Write(text, PrometheusText.Label("expert_node", "expert-1"), header: false);
        string written = text.ToString();
        Assert.Single(written.Split('\n'), l => l.StartsWith("# TYPE rt_seconds histogram", StringComparison.Ordinal));
        PrometheusScrape scrape = PrometheusScrape.Parse(written);
        Assert.Equal(1, scrape.Value("rt_seconds_bucket", ("expert_node", "expert-0"), ("le", "0.001")));
        Assert.Equal(0, scrape.Value("rt_seconds_bucket", ("expert_node", "expert-1"), ("le", "0.001")));
        Assert.Equal(1, scrape.Value("rt_seconds_bucket", ("expert_node", "expert-1"), ("le", "0.01")));
        Assert.Equal(2, scrape.Value("rt_seconds_count", ("expert_node", "expert-1")));
        Assert.Equal(0.055, scrape.Value("rt_seconds_sum", ("expert_node", "expert-1")), 9);
    }
}
