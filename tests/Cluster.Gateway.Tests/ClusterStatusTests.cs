using System.Net;
using System.Text.Json;
using static Cluster.Gateway.Tests.ApiClient;

namespace Cluster.Gateway.Tests;

/// <summary>GET /cluster/status and /readyz over every kind of node.</summary>
public sealed class ClusterStatusTests
{
    private static readonly string[] s_fields =
    [
        "endpoint", "node_id", "role", "state", "running", "queued", "queued_prompt_tokens", "block_size", "blocks_total", "blocks_used",
        "blocks_cached", "blocks_available", "prefix_lookup_tokens", "prefix_hit_tokens", "prefix_hit_rate", "prompt_tokens",
        "generated_tokens", "kv_bytes_sent", "kv_bytes_received", "restarts",
    ];

    [Fact]
    public async Task Status_reports_the_queue_and_every_nodes_live_statistics()
    {
        ServedModel model = TestModel.Served;
        await using ScriptedNode prefill = await ScriptedNode.StartAsync(model, "prefill"), decode = await ScriptedNode.StartAsync(model, "decode");
        // Listed as a decode node, it says it serves whole requests: never used, and the status says why.
        await using ScriptedNode miscast = await ScriptedNode.StartAsync(model, "both");
        string dead = $"127.0.0.1:{DeadPort()}";
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([dead]) with
        {
            PrefillNodes = [prefill.Endpoint],
            DecodeNodes = [decode.Endpoint, miscast.Endpoint],
        });
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };

        var stats = prefill.Stats.Clone();
        (stats.PrefixLookupTokens, stats.PrefixHitTokens, stats.KvBytesSent, stats.QueuedPromptTokens, stats.BlocksUsed) = (200, 50, 1234, 77, 9);
        prefill.Stats = stats;

        using var response = await http.GetAsync("/cluster/status");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        JsonElement report = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(0, report.GetProperty("gateway").GetProperty("queued").GetInt32());
        Assert.Equal(0, report.GetProperty("gateway").GetProperty("in_flight").GetInt32());
        var nodes = report.GetProperty("nodes").EnumerateArray().ToDictionary(n => n.GetProperty("endpoint").GetString()!);
        Assert.Equal(4, nodes.Count);
        foreach (JsonElement node in nodes.Values)
            Assert.Equal(s_fields, node.EnumerateObject().Select(p => p.Name));

        JsonElement p = nodes[prefill.Endpoint];
        Assert.Equal("prefill", p.GetProperty("role").GetString());
        Assert.Equal("ok", p.GetProperty("state").GetString());
        Assert.Equal("scripted-prefill", p.GetProperty("node_id").GetString());
        Assert.Equal(16, p.GetProperty("block_size").GetInt32());
        Assert.Equal(10_000, p.GetProperty("blocks_total").GetInt32());
        Assert.Equal(9, p.GetProperty("blocks_used").GetInt32());
        Assert.Equal(77, p.GetProperty("queued_prompt_tokens").GetInt32());
        Assert.Equal(0.25, p.GetProperty("prefix_hit_rate").GetDouble());
        Assert.Equal(1234, p.GetProperty("kv_bytes_sent").GetInt64());
        Assert.Equal("decode", nodes[decode.Endpoint].GetProperty("role").GetString());
        Assert.Equal("ok", nodes[decode.Endpoint].GetProperty("state").GetString());
        Assert.StartsWith("Unavailable", nodes[dead].GetProperty("state").GetString());
        Assert.Equal("both", nodes[dead].GetProperty("role").GetString());
        Assert.Contains("configured as a decode node but reports role both", nodes[miscast.Endpoint].GetProperty("state").GetString());

        // Served by the pair; the miscast node is never sent a request.
        for (int i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.OK, (await PostAsync(http, "/v1/completions", new { model = "tiny-test", prompt = new[] { 0, 1 } })).Status);
        Assert.Equal(3, decode.Requests);
        Assert.Equal(0, miscast.Requests);

        using var ready = await http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        var probes = JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement.GetProperty("nodes").EnumerateArray()
            .ToDictionary(n => n.GetProperty("endpoint").GetString()!, n => n.GetProperty("status").GetString());
        Assert.Equal("SERVING", probes[prefill.Endpoint]);
        Assert.Equal("SERVING", probes[decode.Endpoint]);
        Assert.StartsWith("Unavailable", probes[dead]);
    }
}
