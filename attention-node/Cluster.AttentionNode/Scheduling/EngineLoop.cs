using System.Threading.Channels;
using Cluster.Engine.Cache;
using Cluster.Engine.Model;
using Cluster.Engine.Sampling;
using Cluster.Protos.V1;
using Microsoft.Extensions.Logging;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// The engine thread: takes the submitted sequences, asks the <see cref="SchedulePolicy"/> for each step and runs it
/// on the model: a prefill chunk is one <see cref="Transformer.Prefill"/> (a Prefill call's rows leave as each layer
/// of the chunk is done; a completed prompt is published to the prefix cache and its first token sampled), a decode
/// step one <see cref="Transformer.Decode"/> over the whole running batch, so a MoE layer dispatches once per step
/// for the batch. Tokens go out through each sequence's writer. A failure fails only the requests of the failing
/// step and the thread keeps serving; every sequence that ends, however, gives its blocks back.
/// </summary>
internal sealed class EngineLoop : IAsyncDisposable
{
    private readonly Transformer _model;
    private readonly LatentCacheManager _caches;
    private readonly SchedulerOptions _options;
    private readonly SchedulerCounters _counters;
    private readonly SchedulePolicy _policy;
    private readonly int _textVocab, _vocab;
    private readonly ILogger _log;
    private readonly Channel<Sequence> _queue = Channel.CreateUnbounded<Sequence>(new UnboundedChannelOptions { SingleReader = true });
    private readonly List<Sequence> _leaving = [];
    private readonly List<ILatentCache> _stepCaches = [];
    private readonly int[] _stepTokens;
    private readonly float[] _logits;
    private readonly Action<int> _sendLayer;
    // The prefill chunk in progress, for Transformer.Prefill's per-layer hook.
    private ScheduledStep _chunk;
    private readonly Thread _thread;
    private volatile bool _stopping;

    /// <param name="textVocab">Ids at or above it have no text (checkpoints pad the vocabulary) and are never sampled.</param>
    public EngineLoop(Transformer model, LatentCacheManager caches, SchedulerOptions options, SchedulerCounters counters, int textVocab, ILogger log)
    {
        _model = model;
        _caches = caches;
        _options = options;
        _counters = counters;
        _policy = new SchedulePolicy(options.MaxBatch, options.PrefillChunk);
        _vocab = model.Config.VocabSize;
        _textVocab = Math.Clamp(textVocab, 1, _vocab);
        _log = log;
        _stepTokens = new int[options.MaxBatch];
        _logits = new float[(long)options.MaxBatch * _vocab <= Array.MaxLength ? options.MaxBatch * _vocab : throw new ArgumentOutOfRangeException(nameof(options), $"max batch {options.MaxBatch} x vocabulary {_vocab} logits do not fit one buffer")];
        _sendLayer = SendChunkLayer;
        _thread = new Thread(Run) { Name = "engine", IsBackground = true };
        _thread.Start();
    }

    /// <summary>Hands a sequence to the engine thread; cancelling its token ends its stream at once and frees its blocks at the next step.</summary>
    public void Enqueue(Sequence seq)
    {
        seq.Registration = seq.Cancel.Register(static s => ((Sequence)s!).Complete(new OperationCanceledException()), seq);
        _counters.AddQueued(1);
        if (_stopping || !_queue.Writer.TryWrite(seq))
        {
            _counters.AddQueued(-1);
            Close(seq, ShuttingDown());
        }
    }

    /// <summary>Ends a sequence wherever it is: its blocks go back, its unprefilled prompt leaves the queue count, its stream closes.</summary>
    public void Close(Sequence seq, Exception? error)
    {
        if (seq.Cache is { } cache)
        {
            seq.Cache = null;
            _caches.Release(cache);
        }
        if (seq.PendingPrompt > 0)
        {
            _counters.AddQueuedPrompt(-seq.PendingPrompt);
            seq.PendingPrompt = 0;
        }
        seq.Registration.Dispose();
        seq.Complete(error);
    }

    private void Run()
    {
        while (!_stopping)
        {
            try
            {
                while (_queue.Reader.TryRead(out var queued)) _policy.Add(queued);
                int waiting = _policy.Waiting.Count;
                ScheduledStep step = _policy.Next(_leaving);
                // Admitted or cancelled: either way no longer queued.
                _counters.AddQueued(_policy.Waiting.Count - waiting);
                foreach (Sequence seq in _leaving) Close(seq, new OperationCanceledException());
                _leaving.Clear();
                if (step.Kind == StepKind.Prefill) RunPrefill(step);
                else if (step.Kind == StepKind.Decode) RunDecode(step.Batch);
                _counters.SetRunning(_policy.Active);
                if (step.Kind == StepKind.Idle && !_queue.Reader.TryPeek(out _) && !_queue.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) break;
            }
            catch (Exception e)
            {
                // Not a request's fault (those are caught where they happen): fail what runs and keep serving.
                _log.LogError(e, "engine loop failed");
                FailActive(new GenerationFailure(GenerationFailureKind.Internal, $"attention node {_options.NodeId}: {e.Message}", e));
            }
        }
        FailActive(ShuttingDown());
        CloseQueued();
        _counters.SetRunning(0);
    }

    private void RunPrefill(ScheduledStep step)
    {
        Sequence seq = step.Sequence!;
        int[] prompt = seq.Request.Prompt;
        PagedLatentCache cache = seq.Cache!;
        Span<float> logits = _logits.AsSpan(0, _vocab);
        _chunk = step;
        try
        {
            _model.Prefill(prompt.AsSpan(step.Start, step.Count), cache, AttentionPath.Naive, logits, lastRowOnly: true, seq.Transfer is null ? null : _sendLayer);
        }
        catch (Exception e)
        {
            _log.LogWarning(e, "request {Id}: prefill failed", seq.Request.Id);
            Leave(seq, StepFailure(e, $"request {seq.Request.Id}: prefill failed: {e.Message}"));
            return;
        }
        finally { _chunk = default; }
        _counters.AddQueuedPrompt(-step.Count);
        _counters.AddComputedPrompt(step.Count);
        if (!_policy.Prefilled(step)) return;
        _counters.AddPrompt(prompt.Length);
        if (_options.PrefixCache) _caches.Publish(cache, prompt);
        try { CompletePrompt(seq, logits); }
        catch (Exception e) { Close(seq, new GenerationFailure(GenerationFailureKind.Internal, $"request {seq.Request.Id}: sampling failed: {e.Message}", e)); }
    }

    /// <summary>The first token: streamed to the client and the sequence joins the batch, or sent in KvDone and the Prefill call ends.</summary>
    private void CompletePrompt(Sequence seq, Span<float> logits)
    {
        TokenEvent first = Sample(seq, logits, first: true);
        if (seq.Transfer is { } transfer)
        {
            transfer.WriteDone(first);
            Close(seq, null);
        }
        else
        {
            seq.Events!.Write(first);
            if (first.FinishReason.Length > 0) Close(seq, null);
            else _policy.Join(seq);
        }
    }

    /// <summary>Transformer.Prefill's per-layer hook on the engine thread: that layer's rows of the chunk are written.</summary>
    private void SendChunkLayer(int layer)
    {
        Sequence seq = _chunk.Sequence!;
        seq.Transfer!.WriteRows(seq.Cache!, layer, _chunk.Start, _chunk.Count);
    }

    private void RunDecode(IReadOnlyList<Sequence> batch)
    {
        int n = batch.Count;
        _stepCaches.Clear();
        for (int i = 0; i < n; i++)
        {
            _stepTokens[i] = batch[i].LastToken;
            _stepCaches.Add(batch[i].Cache!);
        }
        try { _model.Decode(_stepTokens.AsSpan(0, n), _stepCaches, _logits.AsSpan(0, n * _vocab)); }
        catch (Exception e)
        {
            _log.LogWarning(e, "decode step of {Count} sequences failed", n);
            for (int i = n - 1; i >= 0; i--)
            {
                Sequence seq = batch[i];
                Leave(seq, StepFailure(e, $"request {seq.Request.Id}: decode step failed: {e.Message}"));
            }
            return;
        }
        _counters.AddStep(n);
        // Backwards: the batch is the policy's running list, so a finished sequence leaving keeps the rows still to visit in place.
        for (int i = n - 1; i >= 0; i--)
        {
            Sequence seq = batch[i];
            TokenEvent ev;
            try { ev = Sample(seq, _logits.AsSpan(i * _vocab, _vocab), first: false); }
            catch (Exception e)
            {
                Leave(seq, new GenerationFailure(GenerationFailureKind.Internal, $"request {seq.Request.Id}: sampling failed: {e.Message}", e));
                continue;
            }
            seq.Events!.Write(ev);
            if (ev.FinishReason.Length > 0) Leave(seq, null);
        }
    }

    /// <summary>Samples the next token; its event says whether it was the sequence's last.</summary>
    private TokenEvent Sample(Sequence seq, Span<float> logits, bool first)
    {
        logits[_textVocab..].Fill(float.NegativeInfinity);
        SampledToken token = seq.Sampler.Sample(logits);
        seq.Generated++;
        seq.LastToken = token.Id;
        _counters.AddGenerated(1);
        var ev = new TokenEvent { TokenId = (uint)token.Id, Logprob = token.Logprob };
        foreach (var t in token.TopLogprobs) ev.TopLogprobs.Add(new TopLogprob { TokenId = (uint)t.Id, Logprob = t.Logprob });
        if (first)
        {
            ev.PromptTokens = (uint)seq.Request.Prompt.Length;
            ev.CachedPromptTokens = (uint)seq.CachedPrompt;
        }
        if (seq.IsStop(token.Id)) ev.FinishReason = "stop";
        // The next decode step would need one more position than the context holds.
        else if (seq.Generated >= seq.Request.MaxTokens || seq.Cache!.Length + 1 > _model.Config.MaxPositionEmbeddings) ev.FinishReason = "length";
        return ev;
    }

    /// <summary>An expert node that cannot answer is a peer being unavailable (the stream reopens on the next step), not a bug here.</summary>
    private static GenerationFailure StepFailure(Exception e, string message) =>
        new(e is RoutedExpertsUnavailableException ? GenerationFailureKind.ExpertsUnavailable : GenerationFailureKind.Internal, message, e);

    private GenerationFailure ShuttingDown() => new(GenerationFailureKind.ShuttingDown, $"attention node {_options.NodeId} is shutting down");

    private void Leave(Sequence seq, Exception? error)
    {
        _policy.Leave(seq);
        Close(seq, error);
    }

    /// <summary>Ends every sequence holding a slot, and any the policy had already handed over when the loop failed.</summary>
    private void FailActive(Exception error)
    {
        _policy.TakeActive(_leaving);
        foreach (Sequence seq in _leaving) Close(seq, error);
        _leaving.Clear();
    }

    private void CloseQueued()
    {
        while (_queue.Reader.TryRead(out var seq)) _policy.Add(seq);
        _policy.TakeWaiting(_leaving);
        foreach (Sequence seq in _leaving)
        {
            _counters.AddQueued(-1);
            Close(seq, ShuttingDown());
        }
        _leaving.Clear();
    }

    public async ValueTask DisposeAsync()
    {
        _stopping = true;
        _queue.Writer.TryComplete();
        await Task.Run(() => _thread.Join()).ConfigureAwait(false);
        // A submission racing the loop's last drain is still closed: the queue takes no more now.
        CloseQueued();
    }
}
