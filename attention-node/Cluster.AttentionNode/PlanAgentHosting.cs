using Cluster.ExpertNode.Control;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.AttentionNode;

/// <summary>cluster.v1.PlanAgent on the attention node's gRPC port: the gateway's Control reads and switches the plan through it.</summary>
internal static class PlanAgentHosting
{
    public static void Add(WebApplicationBuilder builder, AttentionOptions options) =>
        builder.Services.AddSingleton(sp => new PlanAgentService(options.NodeId, options.PlanPath, sp.GetRequiredService<ILogger<PlanAgentService>>()));

    public static void Map(WebApplication app) => app.MapGrpcService<PlanAgentService>();

    /// <summary>Once the model is loaded: a node with remote experts answers; one with local experts refuses by name.</summary>
    public static void Attach(WebApplication app, NodeModel node)
    {
        if (node.Experts is { } streams) app.Services.GetRequiredService<PlanAgentService>().Attach(streams, node.ExpertTokens);
    }
}
