using System.Net;
using Cluster.Protos.V1;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Services;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// A prefill node that streams whatever the test scripts for the request's prompt, to show what the decode node
/// makes of a wrong transfer.
/// </summary>
public sealed class FakePrefillNode : IGrpcService, IAsyncDisposable
{
    private readonly Func<PrefillRequest, IEnumerable<KvTransfer>> _script;
    private WebApplication _app = null!;

    private FakePrefillNode(Func<PrefillRequest, IEnumerable<KvTransfer>> script) => _script = script;

    public string Endpoint { get; private set; } = "";

    public static async Task<FakePrefillNode> StartAsync(Func<PrefillRequest, IEnumerable<KvTransfer>> script)
    {
        var node = new FakePrefillNode(script);
        var builder = GrpcHostBuilder.Create(LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.UseGrpcProtocols(null)));
        node._app = builder.Build();
        node._app.MapGrpcService(node);
        await node._app.StartAsync();
        int port = new Uri(node._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
        node.Endpoint = $"127.0.0.1:{port}";
        return node;
    }

    public void Bind(ServiceBinder binder) => binder.ServerStreaming(AttentionMethods.Prefill, PrefillAsync);

    private async Task PrefillAsync(PrefillRequest request, IAsyncStreamWriter<KvTransfer> responses, ServerCallContext context)
    {
        foreach (KvTransfer part in _script(request)) await responses.WriteAsync(part, context.CancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
