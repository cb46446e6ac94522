using Cluster.Transport;
using System.Collections.Concurrent;
using Cluster.Gateway.Nodes;
using Cluster.Gateway.Security;

namespace Cluster.Gateway.Metrics;

/// <summary>
/// The gateway's own figures for <c>GET /metrics</c>: latency histograms of the requests served (time to first
/// token, time per output token after it, end to end), requests by API and outcome, the queue, and every key's
/// tokens (from <see cref="KeyAccounts"/>, the same counters <c>/v1/usage</c> reads), and the calls to each node
/// (<see cref="NodeCallMetrics"/>).
/// </summary>
public sealed class GatewayMetrics(Admission admission, KeyAccounts accounts, NodeCallMetrics nodes)
{
    /// <summary>Outcomes besides the error kinds': served to the end, and the client gone before it.</summary>
    public const string Ok = "ok", Cancelled = "cancelled";

    private readonly ConcurrentDictionary<(string Api, string Code), Counter> _requests = new();

    public LatencyHistogram TimeToFirstToken { get; } = new("cluster_gateway_time_to_first_token_seconds",
        "Seconds from a request's arrival to its first completion token.",
        [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);
    public LatencyHistogram TimePerOutputToken { get; } = new("cluster_gateway_time_per_output_token_seconds",
        "Mean seconds between a request's completion tokens after the first.",
        [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5]);
    public LatencyHistogram RequestDuration { get; } = new("cluster_gateway_request_duration_seconds",
        "Seconds from a generation request's arrival to its end, whatever the outcome.",
        [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]);

    /// <summary>The outcome label of a request the gateway refused or failed.</summary>
    public static string Outcome(GatewayErrorKind kind) => kind switch
    {
        GatewayErrorKind.InvalidRequest => "invalid_request",
        GatewayErrorKind.ModelNotFound => "model_not_found",
        GatewayErrorKind.Unauthenticated => "unauthenticated",
        GatewayErrorKind.RateLimited => "rate_limited",
        GatewayErrorKind.QueueFull => "queue_full",
        GatewayErrorKind.Unavailable => "unavailable",
        _ => "internal",
    };

    /// <summary>One generation request through <paramref name="api"/> ("http", "grpc") that ended with <paramref name="code"/>.</summary>
    public void Request(string api, string code) => Interlocked.Increment(ref _requests.GetOrAdd((api, code), static _ => new Counter()).Value);

    public void Write(TextWriter output)
    {
        TimeToFirstToken.Write(output);
        TimePerOutputToken.Write(output);
        RequestDuration.Write(output);

        PrometheusText.Family(output, "cluster_gateway_requests_total", "counter", "Generation requests by API and outcome (ok, cancelled, or the error's kind).");
        foreach (var ((api, code), counter) in _requests)
            PrometheusText.Sample(output, "cluster_gateway_requests_total", PrometheusText.Label("api", api) + "," + PrometheusText.Label("code", code), Volatile.Read(ref counter.Value));

        PrometheusText.Family(output, "cluster_gateway_queued_requests", "gauge", "Requests waiting in the gateway for room on a node.");
        PrometheusText.Sample(output, "cluster_gateway_queued_requests", "", admission.Queued);
        PrometheusText.Family(output, "cluster_gateway_in_flight_requests", "gauge", "Requests placed on a node and not finished.");
        PrometheusText.Sample(output, "cluster_gateway_in_flight_requests", "", admission.InFlight);

        PrometheusText.Family(output, "cluster_gateway_key_requests_total", "counter", "Generation requests admitted, by API key name.");
        foreach (KeyAccount account in accounts.All)
            PrometheusText.Sample(output, "cluster_gateway_key_requests_total", PrometheusText.Label("key", account.Name), account.Usage.Requests);
        PrometheusText.Family(output, "cluster_gateway_tokens_total", "counter",
            "Tokens of the responses' usage by API key name: prompt (cached ones included), cached (prompt tokens read from a node's prefix cache), completion.");
        foreach (KeyAccount account in accounts.All)
        {
            string key = PrometheusText.Label("key", account.Name) + ",";
            PrometheusText.Sample(output, "cluster_gateway_tokens_total", key + PrometheusText.Label("kind", "prompt"), account.Usage.PromptTokens);
            PrometheusText.Sample(output, "cluster_gateway_tokens_total", key + PrometheusText.Label("kind", "cached"), account.Usage.CachedPromptTokens);
            PrometheusText.Sample(output, "cluster_gateway_tokens_total", key + PrometheusText.Label("kind", "completion"), account.Usage.CompletionTokens);
        }
        nodes.Write(output);
    }

    private sealed class Counter
    {
        public long Value;
    }
}
