using System.Text.RegularExpressions;
using k8s.Models;

namespace Cluster.Helm.Tests;

/// <summary>With the Prometheus Operator's monitors on, the gateway's /metrics is scraped too, on its API port.</summary>
public sealed class GatewayMetricsChartTests
{
    [Fact]
    public void Both_monitors_scrape_the_gateways_api_port()
    {
        RenderedManifests m = RenderedManifests.Parse(ChartRenderer.Render("ci/demo-values.yaml"));
        var gateway = m.CustomResources.Where(r => Regex.IsMatch(r.Yaml, @"name: rel-cluster-gateway\s")).ToList();
        Assert.Equal(["PodMonitor", "ServiceMonitor"], gateway.Select(r => r.Kind).Order());
        foreach (var (_, _, yaml) in gateway)
        {
            Assert.Matches(@"values: \[""gateway""\]", yaml);
            Assert.Matches(@"- port: http\s+path: /metrics", yaml);
        }
        V1Service service = Assert.Single(m.Of<V1Service>(), s => s.Metadata.Name == "rel-cluster-gateway");
        Assert.Contains(service.Spec.Ports, p => p.Name == "http");

        // Off by default, as the attention nodes' are.
        Assert.Empty(RenderedManifests.Parse(ChartRenderer.Render("")).CustomResources);
    }
}
