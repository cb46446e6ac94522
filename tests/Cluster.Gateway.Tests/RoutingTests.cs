using System.Net;
using System.Text;
using Cluster.AttentionNode;
using Cluster.Protos.V1;
using Cluster.Transport;

namespace Cluster.Gateway.Tests;

[Collection("cluster")]
public class RoutingTests(ClusterFixture cluster)
{
    private static async Task<AttentionStats> StatsAsync(string endpoint)
    {
        using var channel = GrpcChannel.ForAddress($"http://{endpoint}");
        return await channel.UnaryAsync(Nodes.AttentionMethods.GetStats, new GetStatsRequest());
    }

    [Fact]
    public async Task Requests_go_to_the_node_with_fewest_in_flight_and_take_turns_on_ties()
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

        // A node busy with a long request gets none of the next ones.
        using var hold = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("{\"model\":\"tiny-test\",\"prompt\":[0,9],\"max_tokens\":400,\"stream\":true}", Encoding.UTF8, "application/json"),
        };
        using (var holding = await http.SendAsync(hold, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, holding.StatusCode);
            string busy = (await StatsAsync(a)).Running == 1 ? a : b, idle = busy == a ? b : a;
            ulong before = (await StatsAsync(idle)).PromptTokens;
            for (int i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(http, "/v1/completions", small)).Status);
            Assert.Equal(15ul, (await StatsAsync(idle)).PromptTokens - before);
        }
        await cluster.WaitIdleAsync();
    }
}
