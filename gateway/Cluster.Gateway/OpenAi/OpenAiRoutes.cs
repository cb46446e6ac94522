using System.Text.Json;
using System.Text.Json.Serialization;
using Cluster.Gateway.Nodes;
using Cluster.Gateway.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Gateway.OpenAi;

/// <summary>
/// The HTTP port's routes: the OpenAI API, the caller's usage, the probes, the cluster's status, and OpenAI-shaped
/// 404/405 for everything else; all but the probes behind the API key check (<see cref="ApiKeyMiddleware"/>).
/// </summary>
public static class OpenAiRoutes
{
    public static void Map(WebApplication app)
    {
        var model = app.Services.GetRequiredService<ServedModel>();
        var completions = app.Services.GetRequiredService<CompletionEndpoint>();
        var readiness = app.Services.GetRequiredService<Readiness>();
        var router = app.Services.GetRequiredService<NodeRouter>();
        var stats = app.Services.GetRequiredService<StatsPoller>();
        var keys = app.Services.GetRequiredService<ApiKeyMiddleware>();
        int restarts = app.Services.GetRequiredService<GatewayOptions>().Restarts;
        // Routing answers an unknown path with 404 and a known path with the wrong method with 405, both without a
        // body; clients parse OpenAI's error shape, so give them one.
        app.Use(async (http, next) =>
        {
            await next(http).ConfigureAwait(false);
            if (http.Response.HasStarted || http.Response.StatusCode is not (404 or 405)) return;
            string message = http.Response.StatusCode == 404
                ? $"no route {http.Request.Method} {http.Request.Path}"
                : $"{http.Request.Path} does not allow {http.Request.Method}";
            await ApiErrors.WriteAsync(http, http.Response.StatusCode, ApiErrors.Body(http.Response.StatusCode, message)).ConfigureAwait(false);
        });
        app.Use(keys.InvokeAsync);

        app.MapPost("/v1/chat/completions", completions.ChatAsync);
        app.MapPost("/v1/completions", completions.CompletionsAsync);
        app.MapGet("/v1/models", (HttpContext http) =>
        {
            var list = new ModelList { Data = [new ModelCard { Id = model.Id, Created = model.Created }] };
            http.Response.ContentType = "application/json";
            return JsonSerializer.SerializeAsync(http.Response.Body, list, OpenAiJson.Web.ModelList, http.RequestAborted);
        });
        app.MapGet("/v1/usage", (HttpContext http) =>
        {
            http.Response.ContentType = "application/json";
            return JsonSerializer.SerializeAsync(http.Response.Body, UsageReport.Of(ApiKeyMiddleware.AccountOf(http)), UsageJson.Default.UsageReport, http.RequestAborted);
        });
        app.MapGet("/healthz", (HttpContext http) => WriteProbeAsync(http, 200, new ProbeReport { Status = "ok" }));
        app.MapGet("/readyz", async (HttpContext http) =>
        {
            IReadOnlyList<NodeReadiness> nodes = await readiness.CheckAsync(http.RequestAborted).ConfigureAwait(false);
            bool ready = nodes.Count > 0;
            var report = new List<NodeProbe>(nodes.Count);
            foreach (NodeReadiness n in nodes)
            {
                ready &= n.Ready;
                report.Add(new NodeProbe { Endpoint = n.Endpoint, Status = n.Status });
            }
            await WriteProbeAsync(http, ready ? 200 : 503, new ProbeReport { Status = ready ? "ready" : "not ready", Nodes = report }).ConfigureAwait(false);
        });
        app.MapGet("/cluster/status", async (HttpContext http) =>
        {
            // Live numbers: every node is asked now (or joins the round already asking).
            await stats.RefreshAsync(http.RequestAborted).ConfigureAwait(false);
            var report = ClusterStatusReport.From(router.Admission, router.Nodes, restarts);
            http.Response.ContentType = "application/json";
            await JsonSerializer.SerializeAsync(http.Response.Body, report, ClusterStatusJson.Default.ClusterStatusReport, http.RequestAborted).ConfigureAwait(false);
        });
    }

    private static Task WriteProbeAsync(HttpContext http, int status, ProbeReport report)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(http.Response.Body, report, ProbeJson.Default.ProbeReport, http.RequestAborted);
    }
}

public sealed class ProbeReport
{
    public required string Status { get; init; }
    public List<NodeProbe>? Nodes { get; init; }
}

public sealed class NodeProbe
{
    public required string Endpoint { get; init; }
    public required string Status { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ProbeReport))]
internal sealed partial class ProbeJson : JsonSerializerContext;
