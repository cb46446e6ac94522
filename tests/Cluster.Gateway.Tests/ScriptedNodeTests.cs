using System.Net;
using System.Text.Json;
using Cluster.Gateway.Grpc;
using Cluster.Protos.V1;
using Cluster.Transport;
using static Cluster.Gateway.Tests.ApiClient;
using Grpc.Core;

namespace Cluster.Gateway.Tests;

/// <summary>A gateway in front of a <see cref="ScriptedNode"/>, shared by the tests of a class.</summary>
public sealed class ScriptedCluster : IAsyncLifetime
{
    public ScriptedNode Node { get; private set; } = null!;
    public GatewayHost Gateway { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var model = ServedModel.Load(TestModel.Dir, "tiny-test", null);
        Node = await ScriptedNode.StartAsync(model);
        Gateway = await ClusterFixture.StartGatewayAsync([Node.Endpoint]);
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{Gateway.HttpPort}") };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Gateway.DisposeAsync();
        await Node.DisposeAsync();
    }
}

/// <summary>Node behaviour a random model does not show, played by <see cref="ScriptedNode"/>.</summary>
public sealed class ScriptedNodeTests(ScriptedCluster cluster) : IClassFixture<ScriptedCluster>
{
    private ScriptedNode Node => cluster.Node;
    private GatewayHost Gateway => cluster.Gateway;
    private HttpClient Http => cluster.Http;

    private static object Chat(bool stream) => new
    {
        model = "tiny-test",
        messages = new[] { new { role = "user", content = "2+2?" } },
        max_tokens = 100,
        stream,
    };

    [Fact]
    public async Task Think_output_becomes_reasoning_content_and_eos_finishes_with_stop()
    {
        var reply = await PostAsync(Http, "/v1/chat/completions", Chat(stream: false));
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        JsonElement choice = reply.Body.GetProperty("choices")[0];
        Assert.Equal(ScriptedNode.Reasoning, choice.GetProperty("message").GetProperty("reasoning_content").GetString());
        Assert.Equal(ScriptedNode.Answer, choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(Node.ScriptLength, reply.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Streamed_think_output_arrives_as_reasoning_deltas_then_content_deltas()
    {
        var events = await StreamAsync(Http, "/v1/chat/completions", Chat(stream: true));
        var deltas = events[..^1].Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("delta")).ToList();
        string Field(JsonElement d, string name) => d.TryGetProperty(name, out var v) ? v.GetString()! : "";
        Assert.Equal(ScriptedNode.Reasoning, string.Concat(deltas.Select(d => Field(d, "reasoning_content"))));
        Assert.Equal(ScriptedNode.Answer, string.Concat(deltas.Select(d => Field(d, "content"))));
        // No delta mixes a tag into either field.
        Assert.DoesNotContain(deltas, d => Field(d, "content").Contains("think") || Field(d, "reasoning_content").Contains('<'));
        int lastReasoning = deltas.FindLastIndex(d => Field(d, "reasoning_content").Length > 0);
        int firstContent = deltas.FindIndex(d => Field(d, "content").Length > 0);
        Assert.True(lastReasoning < firstContent);
    }

    [Fact]
    public async Task A_node_failing_mid_stream_is_an_error_event_or_a_500()
    {
        var events = await StreamAsync(Http, "/v1/completions", new { model = "tiny-test", prompt = new[] { 0, (int)ScriptedNode.FailMidStream }, stream = true });
        Assert.Equal("[DONE]", events[^1]);
        JsonElement error = JsonDocument.Parse(events[^2]).RootElement.GetProperty("error");
        Assert.Contains("mid-stream", error.GetProperty("message").GetString());
        Assert.Equal("server_error", error.GetProperty("type").GetString());

        var whole = await PostAsync(Http, "/v1/completions", new { model = "tiny-test", prompt = new[] { 0, (int)ScriptedNode.FailMidStream } });
        AssertError(whole, HttpStatusCode.InternalServerError);
        Assert.All(Gateway.Router.Nodes, n => Assert.Equal(0, n.InFlight));
    }

    [Fact]
    public async Task A_request_the_node_refuses_is_400_and_INVALID_ARGUMENT()
    {
        var reply = await PostAsync(Http, "/v1/completions", new { model = "tiny-test", prompt = new[] { 0, (int)ScriptedNode.Refuse }, stream = true });
        Assert.Contains("refused by the script", AssertError(reply, HttpStatusCode.BadRequest).GetProperty("message").GetString());

        using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{Gateway.GrpcPort}");
        var request = new GenerateRequest { PromptTokenIds = { 0, ScriptedNode.Refuse } };
        var e = await Assert.ThrowsAsync<RpcException>(() => new Inference.InferenceClient(channel.Invoker).GenerateAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
    }

    [Fact]
    public async Task Grpc_streams_reasoning_text_apart_from_text()
    {
        using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{Gateway.GrpcPort}");
        var request = new GenerateRequest { Messages = { new ChatMessage { Role = "user", Content = "2+2?" } } };
        var whole = await new Inference.InferenceClient(channel.Invoker).GenerateAsync(request).ResponseAsync;
        Assert.Equal(ScriptedNode.Reasoning, whole.ReasoningText);
        Assert.Equal(ScriptedNode.Answer, whole.Text);
        Assert.Equal("stop", whole.FinishReason);
    }
}
