using System.Runtime.CompilerServices;
using Cluster.Protos.V1;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// Runs each request where <see cref="Admission"/> places it: Generate on a node of role both, or on a decode node
/// naming the prefill node that runs the prompt. A node that refuses before the first token (RESOURCE_EXHAUSTED: its
/// cache is fuller than the ledger knew; UNAVAILABLE: it cannot be reached) is left for the next candidate; when
/// every candidate refused and one of them for room, the request goes back to the head of the queue, else it fails
/// with Unavailable.
/// </summary>
public sealed class NodeRouter(Admission admission, StatsPoller stats, ILogger<NodeRouter> logger)
{
    /// <summary>The nodes requests are placed on now (discovery may change them).</summary>
    public IReadOnlyList<AttentionNode> Nodes => Admission.Nodes;
    public Admission Admission { get; } = admission;

    /// <summary>The node's token events for one request, from the first to the one carrying finish_reason.</summary>
    public async IAsyncEnumerable<TokenEvent> GenerateAsync(TokenGenerateRequest request, [EnumeratorCancellation] CancellationToken ct)
    {
        var (placement, call) = await StartAsync(request, ct).ConfigureAwait(false);
        AttentionNode node = placement.Node;
        try
        {
            IAsyncStreamReader<TokenEvent> events = call.ResponseStream;
            yield return events.Current;
            if (events.Current.FinishReason.Length > 0) yield break;
            while (true)
            {
                try
                {
                    if (!await events.MoveNext(ct).ConfigureAwait(false)) break;
                }
                catch (RpcException e) { throw Failure(e, node, ct); }
                yield return events.Current;
                if (events.Current.FinishReason.Length > 0) yield break;
            }
            throw new GatewayException(GatewayErrorKind.Internal, $"attention node {node.Endpoint} ended the stream before the last token");
        }
        finally
        {
            // Disposing a call still running resets its stream: the node stops the request and frees its cache.
            call.Dispose();
            Admission.Release(placement);
        }
    }

    /// <summary>Gets the request admitted, opens its stream and waits for the first event, moving on when a node refuses.</summary>
    private async Task<(Placement, AsyncServerStreamingCall<TokenEvent>)> StartAsync(TokenGenerateRequest request, CancellationToken ct)
    {
        var wanted = new AdmissionRequest(request.PromptTokenIds, (int)request.Sampling.MaxTokens);
        await stats.FirstRound.WaitAsync(ct).ConfigureAwait(false);
        // With every node failing the statistics may be older than the nodes' state: ask again before giving up.
        if (!Admission.HasRoute()) await stats.RefreshAsync(ct).ConfigureAwait(false);
        Placement placement = await Admission.AdmitAsync(wanted, ct).ConfigureAwait(false);
        var tried = new HashSet<AttentionNode>();
        bool full = false;
        while (true)
        {
            request.PrefillNode = placement.Prefill?.Endpoint ?? "";
            var call = placement.Node.Client.Generate(request, cancellationToken: ct);
            RpcException refusal;
            try
            {
                if (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
                {
                    placement.Node.MarkUp();
                    Admission.FirstToken(placement);
                    return (placement, call);
                }
                throw new GatewayException(GatewayErrorKind.Internal, $"attention node {placement.Node.Endpoint} ended the stream without a token");
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.ResourceExhausted or StatusCode.Unavailable && !ct.IsCancellationRequested)
            {
                call.Dispose();
                refusal = e;
            }
            catch (Exception e)
            {
                call.Dispose();
                Admission.Release(placement);
                if (e is RpcException rpc) throw Failure(rpc, placement.Node, ct);
                throw;
            }

            AttentionNode refusing = placement.Node;
            if (refusal.StatusCode == StatusCode.ResourceExhausted) full = true;
            // A decode node that cannot reach its prefill node says so naming it; that node is the one to avoid.
            else if (placement.Prefill is { } prefill && refusal.Status.Detail.Contains(prefill.Endpoint, StringComparison.Ordinal)) refusing = prefill;
            if (refusal.StatusCode == StatusCode.Unavailable) refusing.MarkDown();
            tried.Add(refusing);
            // A node short of room is routine under load (its cache holds other gateways' requests too); one out of reach is not.
            logger.Log(refusal.StatusCode == StatusCode.ResourceExhausted ? LogLevel.Information : LogLevel.Warning, "attention node {Node} refused request {Id} ({Code}: {Detail}); trying another",
                refusing.Endpoint, request.RequestId, refusal.StatusCode, refusal.Status.Detail);
            var (next, waited) = await Admission.RetryAsync(placement, tried, requeue: full, ct).ConfigureAwait(false);
            placement = next ?? throw new GatewayException(GatewayErrorKind.Unavailable,
                $"no attention node can take the request (last: {refusing.Endpoint}: {refusal.StatusCode}: {refusal.Status.Detail})");
            // A place given from the queue starts a new round over every node.
            if (waited)
            {
                tried.Clear();
                full = false;
            }
        }
    }

    private static Exception Failure(RpcException e, AttentionNode node, CancellationToken ct)
    {
        if (ct.IsCancellationRequested) return new OperationCanceledException(ct);
        GatewayErrorKind kind = e.StatusCode switch
        {
            StatusCode.InvalidArgument or StatusCode.OutOfRange => GatewayErrorKind.InvalidRequest,
            StatusCode.ResourceExhausted => GatewayErrorKind.QueueFull,
            StatusCode.Unavailable => GatewayErrorKind.Unavailable,
            _ => GatewayErrorKind.Internal,
        };
        return new GatewayException(kind, $"attention node {node.Endpoint}: {e.Status.Detail}");
    }
}
