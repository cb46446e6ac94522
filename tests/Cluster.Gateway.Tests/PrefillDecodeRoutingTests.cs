using System.Net;
using System.Text;
using System.Text.Json;
using static Cluster.Gateway.Tests.ApiClient;
using Grpc.Core;

namespace Cluster.Gateway.Tests;

/// <summary>Prefill/decode pairs behind the gateway, played by scripted nodes that record what they are sent.</summary>
public sealed class PrefillDecodeRoutingTests
{
    private static ServedModel Model => TestModel.Served;

    private static Task<GatewayHost> StartAsync(ScriptedNode[] prefill, ScriptedNode[] decode, ScriptedNode[]? both = null) =>
        GatewayHost.StartAsync(ClusterFixture.Options([.. (both ?? []).Select(n => n.Endpoint)]) with
        {
            PrefillNodes = [.. prefill.Select(n => n.Endpoint)],
            DecodeNodes = [.. decode.Select(n => n.Endpoint)],
        });

    private static HttpClient Client(GatewayHost gateway) => new() { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };

    /// <summary>A prompt of ids from <paramref name="first"/> up, ending in the script id <paramref name="script"/>.</summary>
    private static int[] Prompt(int first, int length, uint script = 1) => [.. Enumerable.Range(first, length - 1), (int)script];

    private static string Completion(int[] prompt) => JsonSerializer.Serialize(new { model = "tiny-test", prompt, max_tokens = 20 });

    [Fact]
    public async Task A_split_request_goes_to_a_decode_node_naming_a_prefill_node()
    {
        await using ScriptedNode prefill = await ScriptedNode.StartAsync(Model, "prefill"), decode = await ScriptedNode.StartAsync(Model, "decode");
        await using GatewayHost gateway = await StartAsync([prefill], [decode]);
        using HttpClient http = Client(gateway);

        var reply = await PostRawAsync(http, "/v1/completions", Completion([0, 1]));
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.Equal(prefill.Endpoint, Assert.Single(decode.Received).PrefillNode);
        Assert.Equal(0, prefill.Requests);
        Assert.Equal(0, gateway.Router.Admission.InFlight);
    }

    [Fact]
    public async Task A_prompt_sharing_a_long_prefix_goes_to_the_prefill_node_that_ran_it()
    {
        await using ScriptedNode p1 = await ScriptedNode.StartAsync(Model, "prefill"), p2 = await ScriptedNode.StartAsync(Model, "prefill");
        await using ScriptedNode decode = await ScriptedNode.StartAsync(Model, "decode");
        await using GatewayHost gateway = await StartAsync([p1, p2], [decode]);
        using HttpClient http = Client(gateway);

        // Ten whole 16-token blocks in common, then tails of their own; one at a time, so both prefill nodes are idle
        // at every choice and only the expected cache tells them apart (idle ties are otherwise taken in turn).
        int[] prefix = [.. Enumerable.Range(1000, 160)];
        for (int i = 0; i < 4; i++)
        {
            int[] prompt = [.. prefix, .. Prompt(3000 + 100 * i, 30)];
            Assert.Equal(HttpStatusCode.OK, (await PostRawAsync(http, "/v1/completions", Completion(prompt))).Status);
        }
        var chosen = decode.Received.Select(r => r.PrefillNode).ToList();
        Assert.Equal(4, chosen.Count);
        Assert.All(chosen, c => Assert.Equal(chosen[0], c));
    }

    [Fact]
    public async Task Prefill_nodes_are_balanced_by_prompt_tokens_awaiting_their_first_token()
    {
        await using ScriptedNode p1 = await ScriptedNode.StartAsync(Model, "prefill"), p2 = await ScriptedNode.StartAsync(Model, "prefill");
        await using ScriptedNode decode = await ScriptedNode.StartAsync(Model, "decode");
        await using GatewayHost gateway = await StartAsync([p1, p2], [decode]);
        using HttpClient http = Client(gateway);
        using var cancel = new CancellationTokenSource();
        var pending = new List<Task>();

        // Requests that never get a first token keep their prompt tokens queued on their prefill node.
        async Task<string> SendAsync(int[] prompt)
        {
            int before = decode.Requests;
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(Completion(prompt), Encoding.UTF8, "application/json") };
            pending.Add(http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token));
            await Until.TrueAsync(() => decode.Requests > before, () => $"the decode node has {decode.Requests} requests");
            return decode.Received[before].PrefillNode;
        }

        string longOne = await SendAsync(Prompt(1000, 300, ScriptedNode.HangBeforeFirst));
        // By request count the second and third would split; by queued tokens (300 against 20, then 300 against 40)
        // both avoid the node with the long prompt.
        string second = await SendAsync(Prompt(5000, 20, ScriptedNode.HangBeforeFirst));
        string third = await SendAsync(Prompt(6000, 20, ScriptedNode.HangBeforeFirst));
        Assert.NotEqual(longOne, second);
        Assert.Equal(second, third);
        Assert.Equal(300, gateway.Router.Nodes.Single(n => n.Endpoint == longOne).PendingPromptTokens);
        Assert.Equal(40, gateway.Router.Nodes.Single(n => n.Endpoint == second).PendingPromptTokens);

        await cancel.CancelAsync();
        foreach (Task t in pending) await Assert.ThrowsAnyAsync<OperationCanceledException>(() => t);
        await Until.TrueAsync(() => gateway.Router.Admission.InFlight == 0, () => $"{gateway.Router.Admission.InFlight} requests in flight");
        Assert.All(gateway.Router.Nodes, n => Assert.Equal(0, n.PendingPromptTokens));
    }

    [Fact]
    public async Task A_decode_node_refusing_for_room_leaves_the_request_to_another()
    {
        await using ScriptedNode prefill = await ScriptedNode.StartAsync(Model, "prefill");
        // The larger node is chosen first (most free blocks) and refuses.
        await using ScriptedNode full = await ScriptedNode.StartAsync(Model, "decode", blocks: 1000), other = await ScriptedNode.StartAsync(Model, "decode", blocks: 500);
        full.Full = true;
        await using GatewayHost gateway = await StartAsync([prefill], [full, other]);
        using HttpClient http = Client(gateway);

        Assert.Equal(HttpStatusCode.OK, (await PostRawAsync(http, "/v1/completions", Completion([0, 1]))).Status);
        Assert.Equal(1, full.Refused);
        Assert.Equal(prefill.Endpoint, Assert.Single(other.Received).PrefillNode);
        Assert.All(gateway.Router.Nodes, n => Assert.Equal(0, n.ReservedBlocks));
    }

    [Fact]
    public async Task A_prefill_node_the_decode_node_cannot_reach_is_avoided_and_one_that_cannot_serve_is_503()
    {
        await using ScriptedNode p1 = await ScriptedNode.StartAsync(Model, "prefill"), p2 = await ScriptedNode.StartAsync(Model, "prefill");
        await using ScriptedNode decode = await ScriptedNode.StartAsync(Model, "decode");
        await using GatewayHost gateway = await StartAsync([p1, p2], [decode]);
        using HttpClient http = Client(gateway);

        // The decode node cannot pull from p1 and says so naming it: the request moves to p2, and the decode node
        // itself stays in use. The first choice between idle nodes is p1 (ties go in turn from the first).
        decode.UnreachablePrefill = p1.Endpoint;
        for (int i = 0; i < 4; i++)
            Assert.Equal(HttpStatusCode.OK, (await PostRawAsync(http, "/v1/completions", Completion([0, 1]))).Status);
        Assert.Equal(4, decode.Received.Count(r => r.PrefillNode == p2.Endpoint));
        Assert.InRange(decode.Received.Count(r => r.PrefillNode == p1.Endpoint), 1, 4);

        // A decode node that cannot serve at all: every pair is refused for reach, not room, so the client hears 503.
        decode.UnavailableDetail = "attention node decode-0 cannot reach expert node 127.0.0.1:1";
        var error = AssertError(await PostRawAsync(http, "/v1/completions", Completion([0, 1])), HttpStatusCode.ServiceUnavailable);
        Assert.Contains("cannot reach expert node", error.GetProperty("message").GetString());
        Assert.Equal(0, gateway.Router.Admission.InFlight);
    }

    [Fact]
    public async Task A_prompt_no_prefill_node_can_hold_is_400_naming_the_prefill_nodes()
    {
        await using ScriptedNode prefill = await ScriptedNode.StartAsync(Model, "prefill", blocks: 2), decode = await ScriptedNode.StartAsync(Model, "decode");
        await using GatewayHost gateway = await StartAsync([prefill], [decode]);
        using HttpClient http = Client(gateway);

        var error = AssertError(await PostRawAsync(http, "/v1/completions", Completion(Prompt(1000, 40))), HttpStatusCode.BadRequest);
        Assert.Contains("3 cache blocks of 16 tokens (40 tokens), more than any prefill node holds (at most 2 blocks)", error.GetProperty("message").GetString());
        Assert.Equal(0, decode.Requests);
        Assert.Equal(HttpStatusCode.OK, (await PostRawAsync(http, "/v1/completions", Completion(Prompt(1000, 32)))).Status);
    }

    [Fact]
    public async Task Nodes_of_role_both_take_what_the_split_pairs_cannot()
    {
        await using ScriptedNode prefill = await ScriptedNode.StartAsync(Model, "prefill"), decode = await ScriptedNode.StartAsync(Model, "decode", blocks: 2);
        await using ScriptedNode both = await ScriptedNode.StartAsync(Model);
        await using GatewayHost gateway = await StartAsync([prefill], [decode], [both]);
        using HttpClient http = Client(gateway);
        using var cancel = new CancellationTokenSource();

        // The pair is preferred; held there, it fills the decode node's two blocks, so the next goes to the both-node.
        var held = http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent(Completion(Prompt(100, 10, ScriptedNode.Hang)), Encoding.UTF8, "application/json"),
        }, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        await Until.TrueAsync(() => decode.Requests == 1, () => $"decode {decode.Requests}, both {both.Requests}");
        Assert.Equal(HttpStatusCode.OK, (await PostRawAsync(http, "/v1/completions", Completion([0, 1]))).Status);
        Assert.Equal("", Assert.Single(both.Received).PrefillNode);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => held);
    }
}
