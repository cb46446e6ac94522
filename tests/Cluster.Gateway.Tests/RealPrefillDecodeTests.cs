using System.Net;
using System.Text.Json;
using Cluster.AttentionNode;
using Cluster.Protos.V1;
using static Cluster.Gateway.Tests.ApiClient;
using Grpc.Core;

namespace Cluster.Gateway.Tests;

/// <summary>Real prefill and decode nodes behind the gateway: the same greedy text as a node of role both, and prefix hits in usage.</summary>
[Collection("cluster")]
public class RealPrefillDecodeTests(ClusterFixture cluster)
{
    [Fact]
    public async Task A_split_cluster_answers_as_a_whole_node_and_reports_prefix_hits()
    {
        await using AttentionHost prefill = await AttentionHost.StartAsync(new AttentionOptions { ModelDir = TestModel.Dir, NodeId = "prefill-test", Role = NodeRole.Prefill });
        await using AttentionHost decode = await AttentionHost.StartAsync(new AttentionOptions { ModelDir = TestModel.Dir, NodeId = "decode-test", Role = NodeRole.Decode });
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([]) with
        {
            PrefillNodes = [$"127.0.0.1:{prefill.Port}"],
            DecodeNodes = [$"127.0.0.1:{decode.Port}"],
        });
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };

        // Three whole 64-token blocks and a bit: the second time, the prefill node has the blocks in its cache.
        int[] prompt = [0, .. Enumerable.Range(1000, 200)];
        var body = new { model = "tiny-test", prompt, max_tokens = 8, temperature = 0 };
        var reference = await PostAsync(cluster.Http, "/v1/completions", body);
        Assert.Equal(HttpStatusCode.OK, reference.Status);
        string text = reference.Body.GetProperty("choices")[0].GetProperty("text").GetString()!;

        var cold = await PostAsync(http, "/v1/completions", body);
        var warm = await PostAsync(http, "/v1/completions", body);
        foreach (var reply in new[] { cold, warm })
        {
            Assert.Equal(HttpStatusCode.OK, reply.Status);
            Assert.Equal(text, reply.Body.GetProperty("choices")[0].GetProperty("text").GetString());
        }
        Assert.Equal(0, Cached(cold.Body));
        int cached = Cached(warm.Body);
        Assert.True(cached >= 128 && cached % 64 == 0 && cached < prompt.Length, $"cached {cached} of {prompt.Length}");
    }

    private static int Cached(JsonElement body)
    {
        JsonElement usage = body.GetProperty("usage");
        int n = usage.GetProperty("cached_prompt_tokens").GetInt32();
        Assert.Equal(n, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        return n;
    }
}
