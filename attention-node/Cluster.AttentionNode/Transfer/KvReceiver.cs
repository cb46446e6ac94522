using Cluster.AttentionNode.Scheduling;
using Cluster.Engine.Cache;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.AttentionNode.Transfer;

/// <summary>
/// The decode side of a KV transfer: calls Prefill on the request's prefill node and writes the rows it streams
/// into the request's cache as they arrive (on the call's thread, while the engine keeps decoding others),
/// verifying everything: the header against this node's cache, each slice's layer, position, size and place in
/// the prompt, and at the end that every layer holds the whole prompt and the checksum matches. A broken call is
/// UNAVAILABLE, a wrong stream DATA_LOSS; either way the caller releases the cache, and the prefill node frees its
/// side when the call is cancelled.
/// </summary>
internal sealed class KvReceiver(string nodeId, PrefillPeers peers, LatentCacheManager caches, SchedulerCounters counters)
{
    /// <summary>
    /// Fills <paramref name="cache"/> (fresh, reserved for the prompt and its generation) with the prompt's rows
    /// and advances it over them; returns the first token the prefill node sampled with the request's seed.
    /// </summary>
    public async Task<TokenEvent> ReceiveAsync(TokenGenerateRequest request, GenerationRequest valid, PagedLatentCache cache, CancellationToken ct)
    {
        string endpoint = request.PrefillNode;
        var client = new Protos.V1.AttentionService.AttentionServiceClient(peers.For(endpoint).Invoker);
        TokenGenerateRequest forward = request.Clone();
        // The same id and seed on both nodes, so the decode side's sampler continues the prefill side's draws.
        forward.RequestId = valid.Id;
        forward.Sampling ??= new SamplingParams();
        forward.Sampling.Seed = valid.Sampling.Seed;
        forward.PrefillNode = "";
        using var callCancel = CancellationTokenSource.CreateLinkedTokenSource(ct, peers.Closing);
        try
        {
            using var call = client.Prefill(new PrefillRequest { Request = forward, DecodeNode = nodeId }, cancellationToken: callCancel.Token);
            // Slices arrive in pooled buffers (PooledMethods.Prefill); each is copied into the cache before the next read.
            using var parts = new PooledReader<KvTransfer>(call.ResponseStream, KvTransferDecoder.Instance);
            return await ReadAsync(parts, valid.Prompt.Length, cache, callCancel.Token).ConfigureAwait(false);
        }
        catch (InvalidTransfer e)
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"kv transfer from prefill node {endpoint}: {e.Message}"));
        }
        // Whatever else ends the call early (the peer's status, a reset, this node's channels closing at shutdown) is the transport's.
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            string why = peers.Closing.IsCancellationRequested ? $"attention node {nodeId} is shutting down"
                : e is RpcException rpc ? $"{rpc.StatusCode}: {rpc.Status.Detail}" : e.Message;
            throw new RpcException(new Status(StatusCode.Unavailable, $"kv transfer from prefill node {endpoint} failed: {why}"));
        }
    }

    private async Task<TokenEvent> ReadAsync(IAsyncStreamReader<KvTransfer> stream, int promptTokens, PagedLatentCache cache, CancellationToken ct)
    {
        int layers = 0;
        int[]? next = null;
        var checksum = new KvChecksum();
        cache.Reserve(promptTokens);
        while (await stream.MoveNext(ct).ConfigureAwait(false))
        {
            KvTransfer message = stream.Current;
            switch (message.PartCase)
            {
                case KvTransfer.PartOneofCase.Header:
                    if (next is not null) throw new InvalidTransfer("a second header");
                    layers = CheckHeader(message.Header, promptTokens, cache);
                    next = new int[layers];
                    break;
                case KvTransfer.PartOneofCase.Slice:
                    if (next is null) throw new InvalidTransfer("a slice before the header");
                    KvSlice slice = message.Slice;
                    ReadOnlySpan<byte> data = slice.Data.Span;
                    CheckSlice(slice, data.Length, next, promptTokens, cache.BytesPerRow);
                    cache.WriteRaw((int)slice.Layer, (int)slice.Start, (int)slice.Count, data);
                    next[slice.Layer] += (int)slice.Count;
                    checksum.Append(data);
                    counters.AddKvReceived(data.Length);
                    break;
                case KvTransfer.PartOneofCase.Done:
                    if (next is null) throw new InvalidTransfer("KvDone before the header");
                    for (int l = 0; l < layers; l++)
                        if (next[l] != promptTokens) throw new InvalidTransfer($"KvDone with {next[l]} of the prompt's {promptTokens} rows of layer {l}");
                    if (message.Done.Checksum != checksum.Value)
                        throw new InvalidTransfer($"checksum mismatch: KvDone says {message.Done.Checksum:x16}, the data received gives {checksum.Value:x16}");
                    if (message.Done.First is not { } first) throw new InvalidTransfer("KvDone without the first token");
                    cache.Advance(promptTokens);
                    return first;
                default:
                    throw new InvalidTransfer("a message with no part");
            }
        }
        throw new InvalidTransfer(next is null ? "the stream ended before the header" : "the stream ended before KvDone");
    }

    private int CheckHeader(KvHeader header, int promptTokens, PagedLatentCache cache)
    {
        if (header.Layers != (uint)caches.Layers) throw new InvalidTransfer($"header: {header.Layers} layers, this node has {caches.Layers}");
        string dtype = cache.Format.Name();
        if (header.Dtype != dtype) throw new InvalidTransfer($"header: dtype '{header.Dtype}', this node stores '{dtype}'");
        if (header.RowSize != (uint)cache.RowSize) throw new InvalidTransfer($"header: row size {header.RowSize}, this node's is {cache.RowSize}");
        if (header.PromptTokens != (uint)promptTokens) throw new InvalidTransfer($"header: {header.PromptTokens} prompt tokens, the request has {promptTokens}");
        if (header.CachedPromptTokens > header.PromptTokens) throw new InvalidTransfer($"header: {header.CachedPromptTokens} cached prompt tokens of a {header.PromptTokens}-token prompt");
        return caches.Layers;
    }

    private static void CheckSlice(KvSlice slice, int bytes, int[] next, int promptTokens, int bytesPerRow)
    {
        if (slice.Layer >= (uint)next.Length) throw new InvalidTransfer($"slice of layer {slice.Layer}: the header announced {next.Length} layers");
        int expected = next[slice.Layer];
        string where = $"slice of layer {slice.Layer} at {slice.Start}";
        if (slice.Start != (uint)expected) throw new InvalidTransfer($"{where}: expected position {expected} (a gap or overlap)");
        if (slice.Count == 0) throw new InvalidTransfer($"{where}: no rows");
        if ((ulong)slice.Start + slice.Count > (ulong)promptTokens) throw new InvalidTransfer($"{where}: {slice.Count} rows run past the prompt of {promptTokens}");
        if ((long)bytes != (long)slice.Count * bytesPerRow) throw new InvalidTransfer($"{where}: {bytes} bytes for {slice.Count} rows of {bytesPerRow}");
    }

    /// <summary>What the prefill node sent is wrong: DATA_LOSS, unlike a broken call.</summary>
    private sealed class InvalidTransfer(string message) : Exception(message);
}
