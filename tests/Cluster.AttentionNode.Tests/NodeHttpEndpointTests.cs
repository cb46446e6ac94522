using System.Net;
using System.Text.Json;
using Cluster.Protos.V1;
using Grpc.Core;

namespace Cluster.AttentionNode.Tests;

/// <summary>The node's HTTP/1.1 statistics port: GetStats as JSON, and the same numbers for Prometheus.</summary>
public sealed class NodeHttpEndpointTests
{
    [Fact]
    public async Task StatsAndMetricsMatchGetStats()
    {
        await using var node = await TestNode.StartAsync("attention-7", NodeRole.Both, o => o with { HttpPort = 0, KvBlockSize = 16 });
        Assert.True(node.Host.HttpPort is > 0 && node.Host.HttpPort != node.Host.Port, "a port of its own");
        uint[] prompt = TinyModel.Prompt(3, 40);
        await node.GenerateAsync(TestNode.Greedy(prompt, 5));
        await node.GenerateAsync(TestNode.Greedy(prompt, 5));
        AttentionStats grpc = await node.StatsAsync();
        Assert.Equal(80ul, grpc.PromptTokens);
        Assert.Equal(32ul, grpc.PrefixHitTokens);

        // HTTP/1.1, as curl or a Prometheus scraper speaks it.
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{node.Host.HttpPort}") };
        using var response = await http.GetAsync("/stats");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new Version(1, 1), response.Version);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement stats = json.RootElement;
        Assert.Equal("attention-7", stats.GetProperty("node_id").GetString());
        // The NodeRole enum by its proto name, as protobuf's JSON mapping writes enums.
        Assert.Equal("NODE_ROLE_BOTH", stats.GetProperty("role").GetString());
        // protobuf's JSON mapping: 64-bit counters as strings, 32-bit as numbers.
        Assert.Equal("80", stats.GetProperty("prompt_tokens").GetString());
        Assert.Equal("32", stats.GetProperty("prefix_hit_tokens").GetString());
        Assert.Equal(16, stats.GetProperty("block_size").GetInt32());
        Assert.Equal((int)grpc.BlocksTotal, stats.GetProperty("blocks_total").GetInt32());

        string metrics = await http.GetStringAsync("/metrics");
        string labels = "{node=\"attention-7\",role=\"both\"}";
        Assert.Contains("# TYPE cluster_attention_prompt_tokens_total counter\n", metrics);
        Assert.Contains($"cluster_attention_prompt_tokens_total{labels} 80\n", metrics);
        Assert.Contains($"cluster_attention_prefix_hit_tokens_total{labels} 32\n", metrics);
        Assert.Contains($"cluster_attention_kv_blocks{{node=\"attention-7\",role=\"both\",state=\"total\"}} {grpc.BlocksTotal}\n", metrics);
        // The gRPC calls the node served, GetStats among them, by method and status.
        Assert.Matches("cluster_grpc_server_handled_total\\{grpc_method=\"/cluster.v1.AttentionService/GetStats\",grpc_code=\"OK\"\\} [1-9]\\d*\n", metrics);
        // Every sample line is "name{labels} number" (integers but for the seconds spent in calls).
        foreach (string line in metrics.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            Assert.Matches(line.StartsWith('#') ? @"^# (HELP|TYPE) cluster_(attention|grpc_server)_\w+ .+$"
                : line.StartsWith("cluster_grpc_server_handling_seconds", StringComparison.Ordinal) ? @"^cluster_grpc_server_\w+\{[^}]*\} [0-9.E+-]+$"
                : @"^cluster_(attention|grpc_server)_\w+\{[^}]*\} \d+$", line);
    }

    [Fact]
    public async Task WithoutAnHttpPortTheNodeHasNone()
    {
        await using var node = await TestNode.StartAsync("attention-8", NodeRole.Both);
        Assert.Null(node.Host.HttpPort);
    }
}
