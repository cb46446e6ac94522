using System.Net;
using System.Text;
using Cluster.AttentionNode;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.Gateway.Tests;

[Collection("cluster")]
public class RoutingTests(ClusterFixture cluster)
{
    private static async Task<AttentionStats> StatsAsync(string endpoint)
    {
        using var channel = PeerChannel.ForAddress($"http://{endpoint}");
        return await new Protos.V1.AttentionService.AttentionServiceClient(channel.Invoker).GetStatsAsync(new GetStatsRequest()).ResponseAsync;
    }

    [Fact]
    public async Task Idle_nodes_take_turns()
    {
        await using AttentionHost second = await AttentionHost.StartAsync(new AttentionOptions { ModelDir = TestModel.Dir, NodeId = "attention-second" });
        string a = cluster.NodeEndpoint, b = $"127.0.0.1:{second.Port}";
        await using GatewayHost gateway = await ClusterFixture.StartGatewayAsync([a, b]);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };
        const string small = "{\"model\":\"tiny-test\",\"prompt\":[0,1,2,3,4],\"max_tokens\":1}";

        // Idle nodes take turns.
        ulong a0 = (await StatsAsync(a)).PromptTokens, b0 = (await StatsAsync(b)).PromptTokens;
        for (int i = 0; i < 4; i++) Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(http, "/v1/completions", small)).Status);
        Assert.Equal(10ul, (await StatsAsync(a)).PromptTokens - a0);
        Assert.Equal(10ul, (await StatsAsync(b)).PromptTokens - b0);

    }

    [Fact]
    public async Task A_node_busy_with_a_request_gets_none_of_the_next_ones()
    {
        await using ScriptedNode first = await ScriptedNode.StartAsync(cluster.Gateway.Model), second = await ScriptedNode.StartAsync(cluster.Gateway.Model);
        await using GatewayHost gateway = await ClusterFixture.StartGatewayAsync([first.Endpoint, second.Endpoint]);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };
        using var hold = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent($"{{\"model\":\"tiny-test\",\"prompt\":[0,{ScriptedNode.Hang}],\"stream\":true}}", Encoding.UTF8, "application/json"),
        };
        using var holding = await http.SendAsync(hold, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, holding.StatusCode);
        ScriptedNode busy = first.Requests == 1 ? first : second, idle = busy == first ? second : first;
        for (int i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(http, "/v1/completions", "{\"model\":\"tiny-test\",\"prompt\":[0,1]}")).Status);
        Assert.Equal(1, busy.Requests);
        Assert.Equal(3, idle.Requests);
    }
}
