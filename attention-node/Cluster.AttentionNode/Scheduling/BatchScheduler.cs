using System.Threading.Channels;
using Cluster.AttentionNode.Transfer;
using Cluster.Engine.Cache;
using Cluster.Engine.Model;
using Cluster.Engine.Sampling;
using Cluster.Protos.V1;
using Cluster.Transport;
using Microsoft.Extensions.Logging;
using Grpc.Core;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// Continuous batching on one engine thread over the node's paged latent cache. A request reserves every block
/// its whole context can need when it is submitted (or is refused at once with RESOURCE_EXHAUSTED), then waits
/// for one of MaxBatch slots. Between decode steps the engine computes ONE prefill chunk, taking the prompts in
/// prefill round robin (<see cref="BatchScheduler"/>.Prefill.cs), so neither a long prompt nor the running batch
/// holds the other up by more than a chunk; each decode step is one <see cref="Transformer.Decode"/> over the
/// running batch (.Decode.cs), so a MoE layer dispatches once per step for the whole batch. Three kinds of
/// sequence: a generation prefilled here, a Prefill call whose cache streams out layer by layer as each chunk's
/// layer is done, and a generation whose cache came from a prefill node and joins the batch directly. Cancelled
/// sequences leave at the next boundary and their blocks go back. A failure fails only the requests in the
/// failing chunk or step; the thread keeps serving.
/// </summary>
public sealed partial class BatchScheduler : IAsyncDisposable
{
    private readonly Transformer _model;
    private readonly LatentCacheManager _caches;
    private readonly SchedulerOptions _options;
    private readonly int _textVocab, _vocab;
    private readonly int[] _eos;
    private readonly ILogger _log;
    private readonly Channel<Sequence> _queue = Channel.CreateUnbounded<Sequence>(new UnboundedChannelOptions { SingleReader = true });
    // Submitted sequences waiting for a batch slot, in arrival order; the engine thread moves them here from the
    // channel so a cancelled one can leave (and free its reserved blocks) before a slot opens.
    private readonly List<Sequence> _waiting = [];
    private readonly float[] _logits;
    private readonly Thread _thread;
    private volatile bool _stopping;

    /// <param name="textVocab">Ids at or above it have no text (checkpoints pad the vocabulary) and are never sampled.</param>
    /// <param name="eos">Ids that end every request, besides its own stop ids.</param>
    public BatchScheduler(Transformer model, LatentCacheManager caches, SchedulerOptions options, int textVocab, IReadOnlyCollection<int> eos, ILogger log)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.PrefillChunk, 1);
        _model = model;
        _caches = caches;
        _options = options;
        _vocab = model.Config.VocabSize;
        _textVocab = Math.Clamp(textVocab, 1, _vocab);
        _eos = [.. eos];
        _log = log;
        _stepTokens = new int[options.MaxBatch];
        _logits = new float[(long)options.MaxBatch * _vocab <= Array.MaxLength ? options.MaxBatch * _vocab : throw new ArgumentOutOfRangeException(nameof(options), $"max batch {options.MaxBatch} x vocabulary {_vocab} logits do not fit one buffer")];
        _sendLayer = SendChunkLayer;
        _thread = new Thread(Loop) { Name = "engine", IsBackground = true };
        _thread.Start();
    }

    public SchedulerCounters Counters { get; } = new();

    public LatentCacheManager Caches => _caches;

    public SchedulerOptions Options => _options;

    /// <summary>
    /// Queues a request prefilled and decoded here, reusing a cached prefix when the prefix cache is on. Throws
    /// RESOURCE_EXHAUSTED when its whole context does not fit the cache now. Cancelling <paramref name="cancel"/>
    /// removes it and frees its blocks.
    /// </summary>
    public ChannelReader<TokenEvent> Submit(GenerationRequest request, CancellationToken cancel)
    {
        Sequence seq = Sequence.ForGeneration(WithEos(request), NewSampler(request), cancel);
        StartPrefill(seq, request.Prompt.Length + request.MaxTokens);
        Enqueue(seq);
        return seq.Events!.Reader;
    }

    /// <summary>
    /// Queues a Prefill call: the stream gets the header and the reused prefix rows at once, then each chunk's rows
    /// layer by layer as the engine computes them, then KvDone with the first token (its checksum left for the
    /// sender to fill). Throws RESOURCE_EXHAUSTED when the prompt does not fit the cache now.
    /// </summary>
    public ChannelReader<KvTransfer> SubmitPrefill(GenerationRequest request, CancellationToken cancel)
    {
        Sequence seq = Sequence.ForTransfer(WithEos(request), NewSampler(request), cancel);
        StartPrefill(seq, request.Prompt.Length);
        try
        {
            PagedLatentCache cache = seq.Cache!;
            ChannelWriter<KvTransfer> output = seq.Transfer!.Writer;
            output.TryWrite(new KvTransfer
            {
                Header = new KvHeader
                {
                    Layers = (uint)_caches.Layers, RowSize = (uint)_caches.RowSize, Dtype = _caches.Format.Name(),
                    PromptTokens = (uint)request.Prompt.Length, CachedPromptTokens = (uint)seq.CachedPrompt,
                },
            });
            for (int l = 0; l < _caches.Layers; l++) KvSlices.Send(cache, l, 0, seq.CachedPrompt, output);
        }
        catch (Exception e)
        {
            Close(seq, e);
            throw;
        }
        Enqueue(seq);
        return seq.Transfer.Reader;
    }

    /// <summary>
    /// Reserves blocks for <paramref name="maxLength"/> positions, or throws RESOURCE_EXHAUSTED naming the need.
    /// The caller owns the cache until it hands it to <see cref="SubmitPrefilled"/> or releases it.
    /// </summary>
    public PagedLatentCache Reserve(ReadOnlySpan<int> prompt, int maxLength, bool reusePrefix)
    {
        int need = _caches.BlocksFor(maxLength);
        if (need > _caches.TotalBlocks)
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"attention node {_options.NodeId}: kv cache too small: request needs {need} blocks, the cache has {_caches.TotalBlocks}"));
        return _caches.TryStart(prompt, maxLength, reusePrefix)
            ?? throw new RpcException(new Status(StatusCode.ResourceExhausted, $"attention node {_options.NodeId}: kv cache full: request needs {need} blocks, {_caches.Stats().AvailableBlocks} available"));
    }

    /// <summary>
    /// Queues a request whose prompt is in <paramref name="cache"/> (every position advanced) and whose first token,
    /// <paramref name="first"/>, was sampled on a prefill node with the same seed; it joins the running batch.
    /// The scheduler owns the cache from here on.
    /// </summary>
    public ChannelReader<TokenEvent> SubmitPrefilled(GenerationRequest request, PagedLatentCache cache, TokenEvent first, CancellationToken cancel)
    {
        Sequence seq = Sequence.ForGeneration(WithEos(request), NewSampler(request), cancel);
        seq.Cache = cache;
        seq.Sampler.SkipDraw();
        seq.Generated = 1;
        seq.LastToken = (int)first.TokenId;
        Enqueue(seq);
        return seq.Events!.Reader;
    }

    private GenerationRequest WithEos(GenerationRequest request) => request with { StopIds = [.. request.StopIds, .. _eos] };

    private Sampler NewSampler(GenerationRequest request) => new(request.Sampling, _vocab);

    private void StartPrefill(Sequence seq, int maxLength)
    {
        int[] prompt = seq.Request.Prompt;
        PagedLatentCache cache = Reserve(prompt, maxLength, _options.PrefixCache);
        seq.Cache = cache;
        seq.CachedPrompt = cache.CachedPrefix;
        seq.PendingPrompt = prompt.Length - cache.Length;
        Counters.AddQueuedPrompt(seq.PendingPrompt);
    }

    private void Enqueue(Sequence seq)
    {
        // The reader stops at once; the engine thread drops the sequence and frees its blocks at the next boundary.
        seq.Registration = seq.Cancel.Register(static s => ((Sequence)s!).Complete(new OperationCanceledException()), seq);
        Counters.AddQueued(1);
        if (_stopping || !_queue.Writer.TryWrite(seq))
        {
            Counters.AddQueued(-1);
            Close(seq, ShuttingDown());
        }
    }

    private void Loop()
    {
        while (!_stopping)
        {
            try
            {
                if (_running.Count == 0 && _prefilling.Count == 0 && _waiting.Count == 0 && !_queue.Reader.TryPeek(out _))
                {
                    if (!_queue.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) break;
                    continue;
                }
                DropCancelled();
                Admit();
                if (_prefilling.Count > 0) PrefillOneChunk();
                if (_running.Count > 0) Step();
                Counters.SetRunning(_running.Count + _prefilling.Count);
            }
            catch (Exception e)
            {
                // Not a request's fault (those are caught where they happen): fail what runs and keep serving.
                _log.LogError(e, "engine loop failed");
                FailAll(new RpcException(new Status(StatusCode.Internal, $"attention node {_options.NodeId}: {e.Message}")));
            }
        }
        FailAll(ShuttingDown());
        CloseQueued();
        Counters.SetRunning(0);
    }

    private void CloseQueued()
    {
        while (_queue.Reader.TryRead(out var seq)) _waiting.Add(seq);
        foreach (Sequence seq in _waiting)
        {
            Counters.AddQueued(-1);
            Close(seq, ShuttingDown());
        }
        _waiting.Clear();
    }

    private RpcException ShuttingDown() => new(new Status(StatusCode.Unavailable, $"attention node {_options.NodeId} is shutting down"));

    private void FailAll(Exception error)
    {
        for (int i = _running.Count - 1; i >= 0; i--) FinishRunning(i, error);
        for (int i = _prefilling.Count - 1; i >= 0; i--) FinishPrefill(i, error);
    }

    private void DropCancelled()
    {
        for (int i = _running.Count - 1; i >= 0; i--)
            if (_running[i].Cancel.IsCancellationRequested) FinishRunning(i, new OperationCanceledException());
        for (int i = _prefilling.Count - 1; i >= 0; i--)
            if (_prefilling[i].Cancel.IsCancellationRequested) FinishPrefill(i, new OperationCanceledException());
        while (_queue.Reader.TryRead(out var queued)) _waiting.Add(queued);
        for (int i = _waiting.Count - 1; i >= 0; i--)
            if (_waiting[i].Cancel.IsCancellationRequested)
            {
                Sequence seq = _waiting[i];
                _waiting.RemoveAt(i);
                Counters.AddQueued(-1);
                Close(seq, new OperationCanceledException());
            }
    }

    /// <summary>Fills free slots in arrival order: prompts to prefill, sequences prefilled elsewhere straight into the batch.</summary>
    private void Admit()
    {
        int taken = 0;
        while (taken < _waiting.Count && _running.Count + _prefilling.Count < _options.MaxBatch)
        {
            Sequence seq = _waiting[taken++];
            Counters.AddQueued(-1);
            if (seq.PendingPrompt > 0) _prefilling.Add(seq);
            else _running.Add(seq);
        }
        _waiting.RemoveRange(0, taken);
    }

    /// <summary>An expert node that cannot answer is a peer being unavailable (the stream reopens on the next step), not a bug here.</summary>
    private static StatusCode CodeFor(Exception e) => e is ExpertNode.Client.ExpertNodeException ? StatusCode.Unavailable : StatusCode.Internal;

    /// <summary>Samples the next token; its event says whether it was the sequence's last.</summary>
    private TokenEvent Sample(Sequence seq, Span<float> logits, bool first)
    {
        logits[_textVocab..].Fill(float.NegativeInfinity);
        SampledToken token = seq.Sampler.Sample(logits);
        seq.Generated++;
        seq.LastToken = token.Id;
        Counters.AddGenerated(1);
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

    /// <summary>Ends a sequence wherever it is: its blocks go back, its unprefilled prompt leaves the queue count, its stream closes.</summary>
    private void Close(Sequence seq, Exception? error)
    {
        if (seq.Cache is { } cache)
        {
            seq.Cache = null;
            _caches.Release(cache);
        }
        if (seq.PendingPrompt > 0)
        {
            Counters.AddQueuedPrompt(-seq.PendingPrompt);
            seq.PendingPrompt = 0;
        }
        seq.Registration.Dispose();
        seq.Complete(error);
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
