using System.Net.Http.Headers;
using Cluster.Gateway.Security;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Gateway.Tests;

/// <summary>
/// A real gateway on loopback with API keys, in front of a scripted node (every request answers the reasoning
/// script), optionally on a fake clock, for the key, limit, usage and metrics tests.
/// </summary>
public sealed class KeyedGateway : IAsyncDisposable
{
    public const string AliceKey = "sk-alice-0123456789abcdef", BobKey = "sk-bob-0123456789abcdef";

    private KeyedGateway(ScriptedNode node, GatewayHost gateway)
    {
        Node = node;
        Gateway = gateway;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}"), Timeout = TimeSpan.FromSeconds(60) };
        Grpc = PeerChannel.ForAddress($"http://127.0.0.1:{gateway.GrpcPort}");
    }

    public ScriptedNode Node { get; }
    public GatewayHost Gateway { get; }
    public HttpClient Http { get; }
    public PeerChannel Grpc { get; }
    public Inference.InferenceClient Inference => new(Grpc.Invoker);

    /// <param name="keys">The keys file's content; null: an open gateway.</param>
    public static async Task<KeyedGateway> StartAsync(string? keys, TimeProvider? time = null)
    {
        ScriptedNode node = await ScriptedNode.StartAsync(TestModel.Served);
        GatewayOptions options = ClusterFixture.Options([node.Endpoint]) with { ApiKeys = keys is null ? ApiKeys.None : ApiKeys.Parse(keys, "keys") };
        if (time is not null)
            // Calls time out after a day of the fake clock and statistics are read once an hour of it: advancing
            // it to refill a limit cuts nothing short.
            options = options with { StatsInterval = TimeSpan.FromHours(1), HealthTimeout = TimeSpan.FromDays(1) };
        GatewayHost gateway = await GatewayHost.StartAsync(options, s => { if (time is not null) s.AddSingleton(time); });
        Nodes.AttentionNode seen = Assert.Single(gateway.Router.Nodes);
        await Until.TrueAsync(() => seen.State.Usable, () => seen.State.Error ?? "usable");
        return new KeyedGateway(node, gateway);
    }

    /// <summary>A chat request with <paramref name="key"/> as its Bearer credential (none when null).</summary>
    public async Task<ApiClient.Reply> ChatAsync(string? key, object? body = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent(body ?? new { model = "tiny-test", messages = new[] { new { role = "user", content = "2+2?" } } }),
        };
        if (key is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await SendAsync(request);
    }

    public async Task<ApiClient.Reply> GetAsync(string path, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (key is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await SendAsync(request);
    }

    public async Task<(ApiClient.Reply Reply, HttpResponseMessage Response)> SendWithHeadersAsync(HttpRequestMessage request)
    {
        HttpResponseMessage response = await Http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        return (new ApiClient.Reply(response.StatusCode, text.Length > 0 && text[0] == '{' ? System.Text.Json.JsonDocument.Parse(text).RootElement : default, text), response);
    }

    private async Task<ApiClient.Reply> SendAsync(HttpRequestMessage request)
    {
        (ApiClient.Reply reply, HttpResponseMessage response) = await SendWithHeadersAsync(request);
        response.Dispose();
        return reply;
    }

    public static StringContent JsonContent(object body) =>
        new(System.Text.Json.JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json");

    public static CallOptions WithKey(string? key) => new(key is null ? [] : new Metadata { { "authorization", "Bearer " + key } });

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        Grpc.Dispose();
        await Gateway.DisposeAsync();
        await Node.DisposeAsync();
    }
}
