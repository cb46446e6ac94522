using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Control;
using Cluster.Protos.V1;
using Cluster.Transport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.ExpertNode.Tests;

/// <summary>
/// An attention node's PlanAgent as the gateway's rollout reaches it: the service on a loopback gRPC port, routing
/// through the given streams, with a plan file of its own that starts with their plan.
/// </summary>
public sealed class PlanAgentHost : IAsyncDisposable
{
    private const string PlanFile = "attention-plan.json";
    private readonly TempDir _dir;
    private readonly GrpcServer _server;
    private readonly PeerChannel _channel;

    private PlanAgentHost(TempDir dir, GrpcServer server, PeerChannel channel)
    {
        _dir = dir;
        _server = server;
        _channel = channel;
        Switch = new RemotePlanSwitch($"127.0.0.1:{server.Port}", new PlanAgent.PlanAgentClient(channel.Invoker));
    }

    public string PlanPath => _dir.File(PlanFile);
    /// <summary>The node as <see cref="PlanRollout"/> sees it: its PlanAgent over gRPC.</summary>
    public IPlanSwitch Switch { get; }

    public static async Task<PlanAgentHost> StartAsync(string nodeId, ExpertStreams streams)
    {
        var dir = new TempDir();
        try
        {
            string path = dir.File(PlanFile);
            streams.Plan.Save(path);
            var agent = new PlanAgentService(nodeId, path, NullLogger<PlanAgentService>.Instance);
            agent.Attach(streams, new long[]?[TinyCheckpoint.Config.NumHiddenLayers]);
            GrpcServer server = await GrpcServer.StartAsync(new GrpcServerOptions(), b => b.Services.AddSingleton(agent), app => app.MapGrpcService<PlanAgentService>());
            return new PlanAgentHost(dir, server, PeerChannel.ForAddress(server.Address));
        }
        catch
        {
            dir.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await _server.DisposeAsync();
        _dir.Dispose();
    }
}
