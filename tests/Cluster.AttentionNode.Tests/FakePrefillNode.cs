using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// A prefill node that streams whatever the test scripts for the request's prompt, to show what the decode node
/// makes of a wrong transfer.
/// </summary>
public sealed class FakePrefillNode : Protos.V1.AttentionService.AttentionServiceBase, IAsyncDisposable
{
    private readonly Func<PrefillRequest, IEnumerable<KvTransfer>> _script;
    private GrpcServer _server = null!;

    private FakePrefillNode(Func<PrefillRequest, IEnumerable<KvTransfer>> script) => _script = script;

    public string Endpoint { get; private set; } = "";

    public static async Task<FakePrefillNode> StartAsync(Func<PrefillRequest, IEnumerable<KvTransfer>> script)
    {
        var node = new FakePrefillNode(script);
        node._server = await GrpcServer.StartAsync(new GrpcServerOptions(), b => b.Services.AddSingleton(node), app => app.MapGrpcService<FakePrefillNode>());
        node.Endpoint = $"127.0.0.1:{node._server.Port}";
        return node;
    }

    public override async Task Prefill(PrefillRequest request, IServerStreamWriter<KvTransfer> responses, ServerCallContext context)
    {
        foreach (KvTransfer part in _script(request)) await responses.WriteAsync(part, context.CancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
    }
}
