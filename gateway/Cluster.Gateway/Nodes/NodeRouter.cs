using Cluster.Transport.Services;
using System.Runtime.CompilerServices;
using Cluster.Protos.V1;
using Cluster.Transport;
using Microsoft.Extensions.Logging;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// Sends each request to the attention node with the fewest requests in flight from this gateway, within the
/// per-node limit. A node that refuses the connection (UNAVAILABLE before any token) is skipped and the next one
/// tried; a request nobody can take fails with QueueFull when some node is merely full, Unavailable otherwise.
/// </summary>
public sealed class NodeRouter(IReadOnlyList<AttentionNode> nodes, int maxInFlightPerNode, ILogger logger)
{
    private int _turn;

    public IReadOnlyList<AttentionNode> Nodes { get; } = nodes;

    /// <summary>The node's token events for one request, from the first to the one carrying finish_reason.</summary>
    public async IAsyncEnumerable<TokenEvent> GenerateAsync(TokenGenerateRequest request, [EnumeratorCancellation] CancellationToken ct)
    {
        var (node, call) = await StartAsync(request, ct).ConfigureAwait(false);
        try
        {
            yield return call.Current;
            if (call.Current.FinishReason.Length > 0) yield break;
            while (true)
            {
                try
                {
                    if (!await call.MoveNext(ct).ConfigureAwait(false)) break;
                }
                catch (RpcException e) { throw Failure(e, node, ct); }
                yield return call.Current;
                if (call.Current.FinishReason.Length > 0) yield break;
            }
            throw new GatewayException(GatewayErrorKind.Internal, $"attention node {node.Endpoint} ended the stream before the last token");
        }
        finally
        {
            // Disposing a call still running resets its stream: the node stops the request and frees its cache.
            call.Dispose();
            node.Release();
        }
    }

    /// <summary>Opens the stream on the first node that takes it and waits for the first event.</summary>
    private async Task<(AttentionNode, GrpcCall<TokenGenerateRequest, TokenEvent>)> StartAsync(TokenGenerateRequest request, CancellationToken ct)
    {
        bool full = false;
        string? lastError = null;
        foreach (AttentionNode node in Candidates())
        {
            if (!node.TryReserve(maxInFlightPerNode)) { full = true; continue; }
            var call = node.Channel.ServerStreaming(AttentionMethods.Generate, request, new CallOptions { CancellationToken = ct });
            try
            {
                if (await call.MoveNext(ct).ConfigureAwait(false))
                {
                    node.MarkUp();
                    return (node, call);
                }
                throw new GatewayException(GatewayErrorKind.Internal, $"attention node {node.Endpoint} ended the stream without a token");
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && !ct.IsCancellationRequested)
            {
                call.Dispose();
                node.Release();
                node.MarkDown();
                lastError = $"{node.Endpoint}: {e.Status.Detail}";
                logger.LogWarning("attention node {Node} unavailable, trying another: {Detail}", node.Endpoint, e.Status.Detail);
            }
            catch (Exception e)
            {
                call.Dispose();
                node.Release();
                if (e is RpcException rpc) throw Failure(rpc, node, ct);
                throw;
            }
        }
        if (full) throw new GatewayException(GatewayErrorKind.QueueFull,
            $"every attention node has {maxInFlightPerNode} requests in flight; retry later");
        throw new GatewayException(GatewayErrorKind.Unavailable, $"no attention node can take the request ({lastError ?? "none configured"})");
    }

    /// <summary>Nodes by requests in flight, the ones that recently refused a connection last; ties taken in turn.</summary>
    private AttentionNode[] Candidates()
    {
        // Sorted on a snapshot: the counts move while other requests come and go.
        int n = Nodes.Count, start = (int)((uint)Interlocked.Increment(ref _turn) % (uint)n);
        var keys = new (bool Down, int InFlight, int Turn)[n];
        var order = new AttentionNode[n];
        for (int i = 0; i < n; i++)
        {
            order[i] = Nodes[i];
            keys[i] = (Nodes[i].RecentlyDown, Nodes[i].InFlight, (i - start + n) % n);
        }
        Array.Sort(keys, order);
        return order;
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
