using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.AttentionNode.Tests;

/// <summary>One attention node of the tiny model (experts in process) with a client channel: a role, a cache, a prefill chunk.</summary>
public sealed class TestNode : IAsyncDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private bool _disposed;

    private TestNode(AttentionHost host)
    {
        Host = host;
        Channel = PeerChannel.ForAddress($"http://127.0.0.1:{host.Port}");
    }

    public AttentionHost Host { get; }
    public PeerChannel Channel { get; }
    /// <summary>What a decode node puts in prefill_node to reach this node.</summary>
    public string Endpoint => $"127.0.0.1:{Host.Port}";

    public static async Task<TestNode> StartAsync(string id, NodeRole role, Func<AttentionOptions, AttentionOptions>? configure = null)
    {
        var options = new AttentionOptions { ModelDir = TinyModel.Directory, NodeId = id, Role = role, MaxBatch = 8 };
        return new TestNode(await AttentionHost.StartAsync(configure is null ? options : configure(options)));
    }

    public static TokenGenerateRequest Greedy(uint[] prompt, uint maxTokens, string prefillNode = "") =>
        new() { PromptTokenIds = { prompt }, Sampling = new() { MaxTokens = maxTokens }, PrefillNode = prefillNode };

    public async Task<List<TokenEvent>> GenerateAsync(TokenGenerateRequest request, CancellationToken cancel = default)
    {
        using var call = new Protos.V1.AttentionService.AttentionServiceClient(Channel.Invoker).Generate(request, deadline: DateTime.UtcNow + Patience, cancellationToken: cancel);
        var events = new List<TokenEvent>();
        while (await call.ResponseStream.MoveNext()) events.Add(call.ResponseStream.Current);
        return events;
    }

    public Task<AttentionStats> StatsAsync() => new Protos.V1.AttentionService.AttentionServiceClient(Channel.Invoker).GetStatsAsync(new GetStatsRequest(), deadline: DateTime.UtcNow + Patience).ResponseAsync;

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        Channel.Dispose();
        await Host.DisposeAsync();
    }
}
