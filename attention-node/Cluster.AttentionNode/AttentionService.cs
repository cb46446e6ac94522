using Cluster.Transport.Services;
using System.Threading.Channels;
using Cluster.AttentionNode.Scheduling;
using Cluster.Protos.V1;
using Cluster.Transport;

namespace Cluster.AttentionNode;

/// <summary>
/// cluster.v1.AttentionService: Generate streams a request's tokens from the node's scheduler; GetStats reports
/// load and counters. Both answer UNAVAILABLE until the model is loaded and the expert streams are up.
/// </summary>
public sealed class AttentionService(string nodeId) : IGrpcService
{
    private NodeModel? _node;
    private long _nextId;

    /// <summary>Opens the service to requests once the model can serve them.</summary>
    internal void Attach(NodeModel node) => Volatile.Write(ref _node, node);

    public void Bind(ServiceBinder binder)
    {
        binder.ServerStreaming(AttentionMethods.Generate, GenerateAsync);
        binder.Unary(AttentionMethods.GetStats, GetStatsAsync);
    }

    private NodeModel Node => Volatile.Read(ref _node) ?? throw new RpcException(StatusCode.Unavailable, $"attention node {nodeId} is still loading");

    private async Task GenerateAsync(TokenGenerateRequest request, IAsyncStreamWriter<TokenEvent> responses, ServerCallContext context)
    {
        NodeModel node = Node;
        GenerationRequest valid = RequestValidation.Validate(request, node.Config, $"{nodeId}-{Interlocked.Increment(ref _nextId)}");
        ChannelReader<TokenEvent> events = node.Scheduler.Submit(valid, context.CancellationToken);
        // A failed request's channel completes with its RpcException, which WaitToReadAsync rethrows as the call's status.
        while (await events.WaitToReadAsync(context.CancellationToken).ConfigureAwait(false))
            while (events.TryRead(out var ev))
                await responses.WriteAsync(ev, context.CancellationToken).ConfigureAwait(false);
    }

    private Task<AttentionStats> GetStatsAsync(GetStatsRequest request, ServerCallContext context) => Task.FromResult(Node.Stats(nodeId));
}
