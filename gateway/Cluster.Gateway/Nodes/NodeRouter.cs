using System.Runtime.CompilerServices;
using Cluster.Protos.V1;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// Runs each request where <see cref="Admission"/> places it: Generate on a node of role both, or on a decode node
/// naming the prefill node that runs the prompt. A node that refuses before the first token (RESOURCE_EXHAUSTED: its
/// cache is fuller than the ledger knew; UNAVAILABLE: it cannot be reached) is left for the next candidate; when
/// every candidate refused and one of them for room, the request goes back to the head of the queue, else it fails
/// with Unavailable. A node lost after the first token (UNAVAILABLE, a broken or reset stream, a stream ending before
/// its last token) is left too: the request migrates to another node as a <see cref="Continuation"/>, at most
/// <see cref="MigrationOptions.MaxMigrations"/> times, and the caller's events go on as from one node.
/// </summary>
public sealed class NodeRouter(Admission admission, StatsPoller stats, IOptions<MigrationOptions> migration, ILogger<NodeRouter> logger)
{
    private readonly int _maxMigrations = migration.Value.MaxMigrations;

    /// <summary>The nodes requests are placed on now (discovery may change them).</summary>
    public IReadOnlyList<AttentionNode> Nodes => Admission.Nodes;
    public Admission Admission { get; } = admission;

    /// <summary>
    /// The request's token events, from the first to the one carrying finish_reason, across migrations: prompt and
    /// cached tokens are those of the first node's first event (the client's prompt; later events carry none).
    /// </summary>
    public async IAsyncEnumerable<TokenEvent> GenerateAsync(TokenGenerateRequest request, [EnumeratorCancellation] CancellationToken ct)
    {
        // A sampled request without a seed gets one here rather than on each node: a continuation after a migration,
        // like a decode node after its prefill node, then draws on from where the first node's sampler was.
        if (request.Sampling.Temperature > 0 && !request.Sampling.HasSeed) request.Sampling.Seed = (ulong)Random.Shared.NextInt64();
        await stats.FirstRound.WaitAsync(ct).ConfigureAwait(false);
        // With every node failing the statistics may be older than the nodes' state: ask again before giving up.
        if (!Admission.HasRoute()) await stats.RefreshAsync(ct).ConfigureAwait(false);
        Placement placement = await Admission.AdmitAsync(new AdmissionRequest(request.PromptTokenIds, (int)request.Sampling.MaxTokens), ct).ConfigureAwait(false);
        var lost = new HashSet<AttentionNode>();
        AsyncServerStreamingCall<TokenEvent> call;
        (placement, call) = await StartAsync(request, placement, lost, ct).ConfigureAwait(false);
        // What a continuation replays.
        var generated = new List<uint>((int)Math.Min(request.Sampling.MaxTokens, 4096));
        try
        {
            for (int migrations = 0; ; migrations++)
            {
                AttentionNode node = placement.Node;
                IAsyncStreamReader<TokenEvent> events = call.ResponseStream;
                if (migrations > 0)
                {
                    events.Current.PromptTokens = 0;
                    events.Current.CachedPromptTokens = 0;
                }
                Exception failure;
                while (true)
                {
                    TokenEvent e = events.Current;
                    generated.Add(e.TokenId);
                    yield return e;
                    if (e.FinishReason.Length > 0) yield break;
                    try
                    {
                        if (!await events.MoveNext(ct).ConfigureAwait(false))
                        {
                            failure = new GatewayException(GatewayErrorKind.Internal, $"attention node {node.Endpoint} ended the stream before the last token");
                            break;
                        }
                    }
                    catch (RpcException rpc) when (IsNodeLost(rpc, ct))
                    {
                        failure = Failure(rpc, node, ct);
                        break;
                    }
                    catch (RpcException rpc) { throw Failure(rpc, node, ct); }
                }

                // Disposing a call still running resets its stream: a node only cut off from us stops the request.
                call.Dispose();
                node.MarkDown();
                lost.Add(node);
                int tokens = generated.Count;
                // A node that sent max_tokens tokens without finishing broke the protocol: nothing is left to replay for.
                string? stay = migrations == _maxMigrations ? $"{_maxMigrations} migrations is the limit"
                    : tokens >= request.Sampling.MaxTokens ? "no token is left to generate" : null;
                if (stay is not null)
                {
                    logger.LogWarning("request {Id} lost attention node {Node} after {Tokens} tokens ({Why}); not migrated: {Stay}",
                        request.RequestId, node.Endpoint, tokens, failure.Message, stay);
                    throw failure;
                }
                TokenGenerateRequest continuation = Continuation.Of(request, generated);
                var wanted = new AdmissionRequest(continuation.PromptTokenIds, (int)continuation.Sampling.MaxTokens);
                Placement? moved = await Admission.MigrateAsync(placement, wanted, lost, ct).ConfigureAwait(false);
                if (moved is null)
                {
                    logger.LogWarning("request {Id} lost attention node {Node} after {Tokens} tokens ({Why}); not migrated: no other attention node is usable",
                        request.RequestId, node.Endpoint, tokens, failure.Message);
                    throw failure;
                }
                (placement, call) = await StartAsync(continuation, moved, lost, ct).ConfigureAwait(false);
                logger.LogWarning("request {Id} lost attention node {Node} after {Tokens} tokens ({Why}); migrated to {Next} (migration {Migration} of at most {Max})",
                    request.RequestId, node.Endpoint, tokens, failure.Message, placement.Node.Endpoint, migrations + 1, _maxMigrations);
            }
        }
        finally
        {
            // Disposing a call still running resets its stream: the node stops the request and frees its cache.
            call.Dispose();
            Admission.Release(placement);
        }
    }

    /// <summary>
    /// A failure of the node or of the way to it rather than of the request: UNAVAILABLE (the node is unreachable or
    /// shutting down), or a status the client made from a transport error (a reset stream, a connection lost).
    /// </summary>
    private static bool IsNodeLost(RpcException e, CancellationToken ct) =>
        !ct.IsCancellationRequested && (e.StatusCode == StatusCode.Unavailable || e.Status.DebugException is not null);

    /// <summary>
    /// Opens the stream of a placed request and waits for its first event, moving on when a node refuses; never to a
    /// node of <paramref name="lost"/> (those a migrating request lost) unless the queue gives it back.
    /// </summary>
    private async Task<(Placement, AsyncServerStreamingCall<TokenEvent>)> StartAsync(TokenGenerateRequest request, Placement placement,
        IReadOnlySet<AttentionNode> lost, CancellationToken ct)
    {
        var tried = new HashSet<AttentionNode>(lost);
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
                tried.UnionWith(lost);
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
