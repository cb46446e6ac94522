using System.Collections.Concurrent;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Gateway.Tests;

/// <summary>
/// A stand-in for an attention node that dies in the middle of every stream: it forwards Generate and GetStats to a
/// real node and, after <see cref="DieAfter"/> token events of a Generate, ends that stream as a lost node would,
/// either with UNAVAILABLE (a node going away) or by resetting the HTTP/2 stream (a process gone), never sending the
/// rest. The real node's call is cancelled with it, so its cache is freed.
/// </summary>
public sealed class DyingNode : AttentionService.AttentionServiceBase, IAsyncDisposable
{
    public enum Death { Unavailable, ResetStream }

    private readonly PeerChannel _upstream;
    private readonly AttentionService.AttentionServiceClient _client;
    private readonly ConcurrentQueue<TokenGenerateRequest> _received = new();
    private GrpcServer? _server;
    private int _deaths;

    private DyingNode(string upstream, int dieAfter, Death death)
    {
        _upstream = PeerChannel.ForAddress($"http://{upstream}");
        _client = new AttentionService.AttentionServiceClient(_upstream.Invoker);
        DieAfter = dieAfter;
        How = death;
    }

    public int DieAfter { get; }
    public Death How { get; }
    public string Endpoint => $"127.0.0.1:{_server!.Port}";
    /// <summary>Every Generate received, as received.</summary>
    public IReadOnlyList<TokenGenerateRequest> Received => [.. _received];
    /// <summary>Streams cut so far.</summary>
    public int Deaths => Volatile.Read(ref _deaths);

    public static async Task<DyingNode> StartAsync(string upstream, int dieAfter, Death death = Death.Unavailable)
    {
        var node = new DyingNode(upstream, dieAfter, death);
        node._server = await GrpcServer.StartAsync(new GrpcServerOptions(), b => b.Services.AddSingleton(node), app => app.MapGrpcService<DyingNode>());
        return node;
    }

    public override Task<AttentionStats> GetStats(GetStatsRequest request, ServerCallContext context) =>
        _client.GetStatsAsync(request, cancellationToken: context.CancellationToken).ResponseAsync;

    public override async Task Generate(TokenGenerateRequest request, IServerStreamWriter<TokenEvent> responses, ServerCallContext context)
    {
        _received.Enqueue(request.Clone());
        using var upstream = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        using var call = _client.Generate(request, cancellationToken: upstream.Token);
        int sent = 0;
        while (await call.ResponseStream.MoveNext(upstream.Token))
        {
            TokenEvent e = call.ResponseStream.Current;
            await responses.WriteAsync(e, context.CancellationToken);
            if (e.FinishReason.Length > 0) return;
            if (++sent < DieAfter) continue;
            Interlocked.Increment(ref _deaths);
            await upstream.CancelAsync();
            if (How == Death.Unavailable) throw new RpcException(new Status(StatusCode.Unavailable, "the stand-in node died mid-stream"));
            context.GetHttpContext().Abort();
            return;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        _upstream.Dispose();
    }
}
