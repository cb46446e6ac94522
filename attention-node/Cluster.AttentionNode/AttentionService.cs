using System.Threading.Channels;
using Cluster.AttentionNode.Scheduling;
using Cluster.AttentionNode.Transfer;
using Cluster.Engine.Cache;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.AttentionNode;

/// <summary>
/// cluster.v1.AttentionService as the node's role allows. Generate streams a request's tokens: prefilled here
/// (role both), or, when it names a prefill node (roles decode and both), from the latent cache that node streams
/// back through Prefill. Prefill (roles prefill and both) computes a prompt and streams its cache with the first
/// token. GetStats reports load, cache and counters. All answer UNAVAILABLE until the model is loaded and the
/// expert streams are up; a method the role does not serve is FAILED_PRECONDITION naming the role.
/// </summary>
[BindServiceMethod(typeof(AttentionService), nameof(BindService))]
public sealed class AttentionService(string nodeId, int restarts) : Protos.V1.AttentionService.AttentionServiceBase
{
    /// <summary>For server reflection, which finds a service's descriptor beside its bind method.</summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => Protos.V1.AttentionService.Descriptor;

    /// <summary>With the project's marshallers (malformed requests are INTERNAL "Failed to parse message").</summary>
    public static void BindService(ServiceBinderBase binder, Protos.V1.AttentionService.AttentionServiceBase? service) =>
        Protos.V1.AttentionService.BindService(new PooledMethodBinder(binder), service);

    /// <summary>How often a supervisor has restarted this node; part of its statistics.</summary>
    public int Restarts => restarts;

    private NodeModel? _node;
    private long _nextId;
    private volatile bool _draining;

    /// <summary>Opens the service to requests once the model can serve them.</summary>
    internal void Attach(NodeModel node) => Volatile.Write(ref _node, node);

    /// <summary>From now on new requests are refused with UNAVAILABLE (the gateway places them elsewhere); running ones go on.</summary>
    internal void StartDraining() => _draining = true;

    private void RefuseWhileDraining()
    {
        if (_draining) throw new RpcException(new Status(StatusCode.Unavailable, $"attention node {nodeId} is shutting down"));
    }

    private NodeModel Node => Volatile.Read(ref _node) ?? throw new RpcException(new Status(StatusCode.Unavailable, $"attention node {nodeId} is still loading"));

    private string NextId() => $"{nodeId}-{Interlocked.Increment(ref _nextId)}";

    public override async Task Generate(TokenGenerateRequest request, IServerStreamWriter<TokenEvent> responses, ServerCallContext context)
    {
        RefuseWhileDraining();
        NodeModel node = Node;
        bool remotePrefill = request.PrefillNode.Length > 0;
        if (node.Role == NodeRole.Prefill) throw WrongRole(node, "it serves Prefill, not Generate");
        if (node.Role == NodeRole.Decode && !remotePrefill) throw WrongRole(node, "Generate needs prefill_node");
        GenerationRequest valid = RequestValidation.Validate(request, node.Config, NextId());
        CancellationToken ct = context.CancellationToken;
        try
        {
            ChannelReader<TokenEvent>? events = remotePrefill
                ? await ContinueFromPrefillNodeAsync(node, request, valid, responses, ct).ConfigureAwait(false)
                : node.Scheduler.Submit(valid, ct);
            if (events is null) return;
            // A failed request's channel completes with its GenerationFailure, which WaitToReadAsync rethrows.
            while (await events.WaitToReadAsync(ct).ConfigureAwait(false))
                while (events.TryRead(out var ev))
                    await responses.WriteAsync(ev, ct).ConfigureAwait(false);
        }
        catch (GenerationFailure e) { throw ToStatus(e); }
    }

    /// <summary>
    /// The decode side: reserves the whole context, receives the prompt's cache from the prefill node, sends the
    /// first token at once and hands the sequence to the running batch; null when the first token was the last.
    /// </summary>
    private static async Task<ChannelReader<TokenEvent>?> ContinueFromPrefillNodeAsync(NodeModel node, TokenGenerateRequest request,
        GenerationRequest valid, IAsyncStreamWriter<TokenEvent> responses, CancellationToken ct)
    {
        BatchScheduler scheduler = node.Scheduler;
        PagedLatentCache cache = scheduler.Reserve([], valid.Prompt.Length + valid.MaxTokens, reusePrefix: false);
        TokenEvent first;
        try
        {
            first = await node.Receiver.ReceiveAsync(request, valid, cache, ct).ConfigureAwait(false);
            await responses.WriteAsync(first, ct).ConfigureAwait(false);
        }
        catch
        {
            scheduler.Caches.Release(cache);
            throw;
        }
        if (first.FinishReason.Length == 0) return scheduler.SubmitPrefilled(valid, cache, first, ct);
        scheduler.Caches.Release(cache);
        return null;
    }

    public override async Task Prefill(PrefillRequest request, IServerStreamWriter<KvTransfer> responses, ServerCallContext context)
    {
        RefuseWhileDraining();
        NodeModel node = Node;
        if (node.Role == NodeRole.Decode) throw WrongRole(node, "it does not serve Prefill");
        if (request.Request is null) throw new RpcException(new Status(StatusCode.InvalidArgument, "request: missing"));
        GenerationRequest valid = RequestValidation.Validate(request.Request, node.Config, NextId());
        CancellationToken ct = context.CancellationToken;
        try
        {
            ChannelReader<KvTransfer> parts = node.Scheduler.SubmitPrefill(valid, ct);
            SchedulerCounters counters = node.Scheduler.Counters;
            var checksum = new KvChecksum();
            while (await parts.WaitToReadAsync(ct).ConfigureAwait(false))
                while (parts.TryRead(out var part))
                {
                    if (part.PartCase == KvTransfer.PartOneofCase.Slice)
                    {
                        ReadOnlySpan<byte> data = part.Slice.Data.Span;
                        checksum.Append(data);
                        counters.AddKvSent(data.Length);
                    }
                    else if (part.PartCase == KvTransfer.PartOneofCase.Done) part.Done.Checksum = checksum.Value;
                    await responses.WriteAsync(part, ct).ConfigureAwait(false);
                    // Serialized into the response by now: a slice's rented buffer can go back.
                    if (part.PartCase == KvTransfer.PartOneofCase.Slice) KvSlices.Return(part);
                }
        }
        catch (GenerationFailure e) { throw ToStatus(e); }
    }

    /// <summary>The scheduler's failures as gRPC statuses: a node shutting down or an expert node down is UNAVAILABLE, so the gateway places the request elsewhere.</summary>
    private static RpcException ToStatus(GenerationFailure e) => new(new Status(e.Kind switch
    {
        GenerationFailureKind.ResourceExhausted => StatusCode.ResourceExhausted,
        GenerationFailureKind.ShuttingDown or GenerationFailureKind.ExpertsUnavailable => StatusCode.Unavailable,
        _ => StatusCode.Internal,
    }, e.Message));

    private RpcException WrongRole(NodeModel node, string why) =>
        new(new Status(StatusCode.FailedPrecondition, $"attention node {nodeId} has role {node.Role.Name()}: {why}"));

    public override Task<AttentionStats> GetStats(GetStatsRequest request, ServerCallContext context) => Task.FromResult(Node.Stats(nodeId, restarts));
}
