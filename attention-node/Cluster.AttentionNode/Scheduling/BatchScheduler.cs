using System.Threading.Channels;
using Cluster.Engine.Cache;
using Cluster.Engine.Model;
using Cluster.Engine.Sampling;
using Cluster.Protos.V1;
using Cluster.Transport;
using Microsoft.Extensions.Logging;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// Continuous batching on one engine thread: between decode steps, queued requests are prefilled (their first
/// token comes from the prefill's logits) and join the running batch; each step is one
/// <see cref="Transformer.Decode"/> over every running sequence, so a MoE layer dispatches once per step for the
/// whole batch. Cancelled sequences leave the batch at the next step boundary and their caches are returned.
/// A failure fails only the requests in the failing prefill or step; the thread keeps serving.
/// </summary>
public sealed class BatchScheduler : IGenerationScheduler
{
    private readonly Transformer _model;
    private readonly ICachePool _caches;
    private readonly int _maxBatch, _textVocab, _vocab;
    private readonly int[] _eos;
    private readonly ILogger _log;
    private readonly Channel<Sequence> _queue = Channel.CreateUnbounded<Sequence>(new UnboundedChannelOptions { SingleReader = true });
    private readonly List<Sequence> _running = [];
    private readonly List<ILatentCache> _stepCaches = [];
    private readonly int[] _stepTokens;
    private readonly float[] _logits;
    private readonly Thread _thread;
    private volatile bool _stopping;

    /// <param name="textVocab">Ids at or above it have no text (checkpoints pad the vocabulary) and are never sampled.</param>
    /// <param name="eos">Ids that end every request, besides its own stop ids.</param>
    public BatchScheduler(Transformer model, ICachePool caches, int maxBatch, int textVocab, IReadOnlyCollection<int> eos, ILogger log)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        _model = model;
        _caches = caches;
        _maxBatch = maxBatch;
        _vocab = model.Config.VocabSize;
        _textVocab = Math.Clamp(textVocab, 1, _vocab);
        _eos = [.. eos];
        _log = log;
        _stepTokens = new int[maxBatch];
        _logits = new float[(long)maxBatch * _vocab <= Array.MaxLength ? maxBatch * _vocab : throw new ArgumentOutOfRangeException(nameof(maxBatch), $"max batch {maxBatch} x vocabulary {_vocab} logits do not fit one buffer")];
        _thread = new Thread(Loop) { Name = "engine", IsBackground = true };
        _thread.Start();
    }

    public SchedulerCounters Counters { get; } = new();

    public ICachePool Caches => _caches;

    public ChannelReader<TokenEvent> Submit(GenerationRequest request, CancellationToken cancel)
    {
        int[] stops = [.. request.StopIds, .. _eos];
        var seq = new Sequence(request with { StopIds = stops }, new Sampler(request.Sampling, _vocab), cancel);
        if (_stopping)
        {
            seq.Events.Writer.TryComplete(new RpcException(StatusCode.Unavailable, "the attention node is shutting down"));
            return seq.Events.Reader;
        }
        // The reader stops at once; the engine thread drops the sequence and frees its cache at the next boundary.
        seq.Registration = cancel.Register(static s => ((Sequence)s!).Events.Writer.TryComplete(new OperationCanceledException()), seq);
        Counters.AddQueued(1);
        _queue.Writer.TryWrite(seq);
        return seq.Events.Reader;
    }

    private void Loop()
    {
        while (!_stopping)
        {
            try
            {
                if (_running.Count == 0 && !_queue.Reader.TryPeek(out _))
                {
                    if (!_queue.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) break;
                    continue;
                }
                DropCancelled();
                Admit();
                if (_running.Count > 0) Step();
                Counters.SetRunning(_running.Count);
            }
            catch (Exception e)
            {
                // Not a request's fault (those are caught where they happen): fail what runs and keep serving.
                _log.LogError(e, "engine loop failed");
                for (int i = _running.Count - 1; i >= 0; i--) Finish(i, new RpcException(StatusCode.Internal, $"attention node: {e.Message}"));
            }
        }
        for (int i = _running.Count - 1; i >= 0; i--) Finish(i, new RpcException(StatusCode.Unavailable, "the attention node is shutting down"));
        while (_queue.Reader.TryRead(out var seq))
        {
            Counters.AddQueued(-1);
            Close(seq, new RpcException(StatusCode.Unavailable, "the attention node is shutting down"));
        }
        Counters.SetRunning(0);
    }

    private void DropCancelled()
    {
        for (int i = _running.Count - 1; i >= 0; i--)
            if (_running[i].Cancel.IsCancellationRequested) Finish(i, new OperationCanceledException());
    }

    private void Admit()
    {
        while (_running.Count < _maxBatch && _queue.Reader.TryRead(out var seq))
        {
            Counters.AddQueued(-1);
            if (seq.Cancel.IsCancellationRequested)
            {
                Close(seq, new OperationCanceledException());
                continue;
            }
            int[] prompt = seq.Request.Prompt;
            Span<float> logits = _logits.AsSpan(0, _vocab);
            try
            {
                seq.Cache = _caches.Rent(prompt.Length + seq.Request.MaxTokens);
                _model.Prefill(prompt, seq.Cache, AttentionPath.Naive, logits, lastRowOnly: true);
                Counters.AddPrompt(prompt.Length);
                if (!Emit(seq, logits, first: true)) _running.Add(seq);
                else Close(seq, null);
            }
            catch (Exception e)
            {
                _log.LogWarning(e, "request {Id}: prefill failed", seq.Request.Id);
                Close(seq, new RpcException(CodeFor(e), $"request {seq.Request.Id}: prefill failed: {e.Message}"));
            }
        }
    }

    private void Step()
    {
        int n = _running.Count;
        _stepCaches.Clear();
        for (int i = 0; i < n; i++)
        {
            _stepTokens[i] = _running[i].LastToken;
            _stepCaches.Add(_running[i].Cache!);
        }
        try { _model.Decode(_stepTokens.AsSpan(0, n), _stepCaches, _logits.AsSpan(0, n * _vocab)); }
        catch (Exception e)
        {
            _log.LogWarning(e, "decode step of {Count} sequences failed", n);
            for (int i = n - 1; i >= 0; i--) Finish(i, new RpcException(CodeFor(e), $"request {_running[i].Request.Id}: decode step failed: {e.Message}"));
            return;
        }
        Counters.AddStep(n);
        // Backwards, so removing a finished sequence leaves the rows still to visit where they were.
        for (int i = n - 1; i >= 0; i--)
        {
            bool done;
            try { done = Emit(_running[i], _logits.AsSpan(i * _vocab, _vocab), first: false); }
            catch (Exception e)
            {
                Finish(i, new RpcException(StatusCode.Internal, $"request {_running[i].Request.Id}: sampling failed: {e.Message}"));
                continue;
            }
            if (done) Finish(i, null);
        }
    }

    /// <summary>An expert node that cannot answer is a peer being unavailable (the stream reopens on the next step), not a bug here.</summary>
    private static StatusCode CodeFor(Exception e) => e is ExpertNode.Client.ExpertNodeException ? StatusCode.Unavailable : StatusCode.Internal;

    /// <summary>Samples the next token and sends it; true when it was the sequence's last.</summary>
    private bool Emit(Sequence seq, Span<float> logits, bool first)
    {
        logits[_textVocab..].Fill(float.NegativeInfinity);
        SampledToken token = seq.Sampler.Sample(logits);
        seq.Generated++;
        seq.LastToken = token.Id;
        Counters.AddGenerated(1);
        var ev = new TokenEvent { TokenId = (uint)token.Id, Logprob = token.Logprob };
        foreach (var t in token.TopLogprobs) ev.TopLogprobs.Add(new TopLogprob { TokenId = (uint)t.Id, Logprob = t.Logprob });
        if (first) ev.PromptTokens = (uint)seq.Request.Prompt.Length;
        if (seq.IsStop(token.Id)) ev.FinishReason = "stop";
        // The next decode step would need one more position than the context holds.
        else if (seq.Generated >= seq.Request.MaxTokens || seq.Cache!.Length + 1 > _model.Config.MaxPositionEmbeddings) ev.FinishReason = "length";
        seq.Events.Writer.TryWrite(ev);
        return ev.FinishReason.Length > 0;
    }

    private void Finish(int index, Exception? error)
    {
        Sequence seq = _running[index];
        _running.RemoveAt(index);
        Close(seq, error);
    }

    private void Close(Sequence seq, Exception? error)
    {
        if (seq.Cache is { } cache)
        {
            seq.Cache = null;
            _caches.Return(cache);
        }
        seq.Registration.Dispose();
        seq.Events.Writer.TryComplete(error);
    }

    public async ValueTask DisposeAsync()
    {
        _stopping = true;
        _queue.Writer.TryComplete();
        await Task.Run(() => _thread.Join()).ConfigureAwait(false);
    }
}
