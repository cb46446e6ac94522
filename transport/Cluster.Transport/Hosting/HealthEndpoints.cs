using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Cluster.Transport;

/// <summary>
/// A node's health over plain HTTP/1.1, for HTTP probes (load balancers; the kubelet where a gRPC port speaks TLS, which its grpc probe
/// cannot): GET /healthz is 200 while the process runs, GET /readyz 200 while <see cref="RoleHealth"/> is SERVING
/// and 503 while the role loads or drains. Bodies as the gateway's probes: {"status":"ok"|"ready"|"not ready"}.
/// </summary>
public static class HealthEndpoints
{
    public static void MapHealthEndpoints(this IEndpointRouteBuilder app, RoleHealth health)
    {
        app.MapGet("/healthz", (HttpContext http) => WriteAsync(http, StatusCodes.Status200OK, "ok"));
        app.MapGet("/readyz", (HttpContext http) => health.IsServing
            ? WriteAsync(http, StatusCodes.Status200OK, "ready")
            : WriteAsync(http, StatusCodes.Status503ServiceUnavailable, "not ready"));
    }

    private static Task WriteAsync(HttpContext http, int status, string report)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        return http.Response.WriteAsync($"{{\"status\":\"{report}\"}}", http.RequestAborted);
    }
}
