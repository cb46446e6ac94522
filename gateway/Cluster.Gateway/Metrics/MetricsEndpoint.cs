using System.Globalization;
using Cluster.Transport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Cluster.Gateway.Metrics;

/// <summary>
/// <c>GET /metrics</c> on the HTTP port, open as the probes are: the gateway's figures and the gRPC calls its gRPC
/// port served (<see cref="CallMetrics"/>), so one scrape covers the role.
/// </summary>
public static class MetricsEndpoint
{
    public static void Map(IEndpointRouteBuilder app, GatewayMetrics metrics, CallMetrics calls) =>
        app.MapGet("/metrics", (HttpContext http) =>
        {
            using var text = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
            metrics.Write(text);
            calls.WritePrometheus(text);
            http.Response.ContentType = PrometheusText.ContentType;
            return http.Response.WriteAsync(text.ToString(), http.RequestAborted);
        });
}
