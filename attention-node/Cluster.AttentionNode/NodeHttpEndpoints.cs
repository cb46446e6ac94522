using System.Globalization;
using Cluster.Protos.V1;
using Cluster.Transport;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Cluster.AttentionNode;

/// <summary>
/// The node's statistics over plain HTTP/1.1 on its own port, for tools that do not speak gRPC: GET /stats is
/// GetStats in protobuf's JSON mapping (proto field names; 64-bit counters as strings, as that mapping writes
/// them), GET /metrics the same numbers in Prometheus' text format for scraping, with the dispatch round trips to each
/// expert node and the gRPC calls the node has served (<see cref="CallMetrics"/>). 503 while the model loads. GET /healthz and /readyz are the kubelet's probes
/// (<see cref="HealthEndpoints"/>): ready exactly while grpc.health.v1 says SERVING.
/// </summary>
internal static class NodeHttpEndpoints
{
    private static readonly JsonFormatter s_json = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true).WithPreserveProtoFieldNames(true));

    /// <param name="dispatch">The round trips to the expert nodes; null while loading or when the node runs its experts itself.</param>
    public static void Map(IEndpointRouteBuilder app, Func<AttentionStats?> stats, Func<ExpertNode.Client.DispatchMetrics?> dispatch, CallMetrics calls, RoleHealth health)
    {
        app.MapHealthEndpoints(health);
        app.MapGet("/stats", (HttpContext http) => Write(http, stats(), "application/json", s => s_json.Format(s)));
        app.MapGet("/metrics", (HttpContext http) => Write(http, stats(), PrometheusText.ContentType, s =>
        {
            using var text = new StringWriter(CultureInfo.InvariantCulture);
            text.Write(Prometheus(s));
            dispatch()?.Write(text);
            calls.WritePrometheus(text);
            return text.ToString();
        }));
    }

    private static Task Write(HttpContext http, AttentionStats? stats, string contentType, Func<AttentionStats, string> render)
    {
        if (stats is null)
        {
            http.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return http.Response.WriteAsync("the attention node is still loading\n", http.RequestAborted);
        }
        http.Response.ContentType = contentType;
        return http.Response.WriteAsync(render(stats), http.RequestAborted);
    }

    /// <summary>One gauge or counter per figure, labelled with the node and its role.</summary>
    internal static string Prometheus(AttentionStats s)
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        string labels = PrometheusText.Label("node", s.NodeId) + "," + PrometheusText.Label("role", s.Role.Name());
        void One(string name, string type, string help, ulong value)
        {
            PrometheusText.Family(text, name, type, help);
            PrometheusText.Sample(text, name, labels, value);
        }
        One("cluster_attention_running", "gauge", "Sequences in prefill or decode.", s.Running);
        One("cluster_attention_queued", "gauge", "Requests holding cache blocks and waiting for a batch slot.", s.Queued);
        One("cluster_attention_queued_prompt_tokens", "gauge", "Prompt tokens waiting for or in prefill.", s.QueuedPromptTokens);
        One("cluster_attention_kv_block_size_tokens", "gauge", "Tokens per latent cache block.", s.BlockSize);
        PrometheusText.Family(text, "cluster_attention_kv_blocks", "gauge", "Latent cache blocks by state.");
        foreach (var (state, blocks) in new[] { ("used", s.BlocksUsed), ("cached", s.BlocksCached), ("available", s.BlocksAvailable), ("total", s.BlocksTotal) })
            PrometheusText.Sample(text, "cluster_attention_kv_blocks", labels + "," + PrometheusText.Label("state", state), blocks);
        One("cluster_attention_prefix_lookup_tokens_total", "counter", "Prompt tokens looked up in the prefix cache.", s.PrefixLookupTokens);
        One("cluster_attention_prefix_hit_tokens_total", "counter", "Prompt tokens found in the prefix cache (not prefilled again).", s.PrefixHitTokens);
        One("cluster_attention_prompt_tokens_total", "counter", "Prompt tokens prefilled on this node.", s.PromptTokens);
        One("cluster_attention_generated_tokens_total", "counter", "Tokens sampled on this node.", s.GeneratedTokens);
        One("cluster_attention_kv_sent_bytes_total", "counter", "Latent cache bytes sent to decode nodes.", s.KvBytesSent);
        One("cluster_attention_kv_received_bytes_total", "counter", "Latent cache bytes received from prefill nodes.", s.KvBytesReceived);
        return text.ToString();
    }
}
