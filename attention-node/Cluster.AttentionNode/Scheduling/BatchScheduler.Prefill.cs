using Cluster.AttentionNode.Transfer;
using Cluster.Engine.Model;
using Cluster.Protos.V1;
using Cluster.Transport;
using Microsoft.Extensions.Logging;
using Grpc.Core;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// Chunked prefill: the prompts in prefill take turns, one chunk of at most PrefillChunk tokens per turn, so a
/// short prompt waits for at most one chunk of each prompt ahead of it. A Prefill call's rows leave as each layer
/// of the chunk is done; a completed prompt is published to the prefix cache and its first token sampled.
/// </summary>
public sealed partial class BatchScheduler
{
    private readonly List<Sequence> _prefilling = [];
    private readonly Action<int> _sendLayer;
    private int _nextPrefill;
    private Sequence? _chunkSequence;
    private int _chunkStart, _chunkCount;

    private void PrefillOneChunk()
    {
        if (_nextPrefill >= _prefilling.Count) _nextPrefill = 0;
        Sequence seq = _prefilling[_nextPrefill];
        int[] prompt = seq.Request.Prompt;
        var cache = seq.Cache!;
        int start = cache.Length, count = Math.Min(_options.PrefillChunk, prompt.Length - start);
        Span<float> logits = _logits.AsSpan(0, _vocab);
        _chunkSequence = seq;
        _chunkStart = start;
        _chunkCount = count;
        try
        {
            _model.Prefill(prompt.AsSpan(start, count), cache, AttentionPath.Naive, logits, lastRowOnly: true, seq.Transfer is null ? null : _sendLayer);
        }
        catch (Exception e)
        {
            _log.LogWarning(e, "request {Id}: prefill failed", seq.Request.Id);
            FinishPrefill(_nextPrefill, new RpcException(new Status(CodeFor(e), $"request {seq.Request.Id}: prefill failed: {e.Message}")));
            return;
        }
        finally { _chunkSequence = null; }
        seq.PendingPrompt -= count;
        Counters.AddQueuedPrompt(-count);
        Counters.AddComputedPrompt(count);
        if (seq.PendingPrompt > 0)
        {
            _nextPrefill++;
            return;
        }
        _prefilling.RemoveAt(_nextPrefill);
        Counters.AddPrompt(prompt.Length);
        if (_options.PrefixCache) _caches.Publish(cache, prompt);
        try { CompletePrompt(seq, logits); }
        catch (Exception e) { Close(seq, new RpcException(new Status(StatusCode.Internal, $"request {seq.Request.Id}: sampling failed: {e.Message}"))); }
    }

    /// <summary>The first token: streamed to the client and the sequence joins the batch, or sent in KvDone and the Prefill call ends.</summary>
    private void CompletePrompt(Sequence seq, Span<float> logits)
    {
        TokenEvent first = Sample(seq, logits, first: true);
        if (seq.Transfer is { } transfer)
        {
            transfer.Writer.TryWrite(new KvTransfer { Done = new KvDone { First = first } });
            Close(seq, null);
        }
        else
        {
            seq.Events!.Writer.TryWrite(first);
            if (first.FinishReason.Length > 0) Close(seq, null);
            else _running.Add(seq);
        }
    }

    /// <summary>Transformer.Prefill's per-layer hook on the engine thread: that layer's rows of the chunk are written.</summary>
    private void SendChunkLayer(int layer)
    {
        Sequence seq = _chunkSequence!;
        KvSlices.Send(seq.Cache!, layer, _chunkStart, _chunkCount, seq.Transfer!.Writer);
    }

    private void FinishPrefill(int index, Exception? error)
    {
        Sequence seq = _prefilling[index];
        _prefilling.RemoveAt(index);
        if (index < _nextPrefill) _nextPrefill--;
        Close(seq, error);
    }
}
