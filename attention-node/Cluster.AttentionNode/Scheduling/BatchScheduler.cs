using System.Threading.Channels;
using Cluster.AttentionNode.Transfer;
using Cluster.Engine.Cache;
using Cluster.Engine.Model;
using Cluster.Engine.Sampling;
using Cluster.Protos.V1;
using Microsoft.Extensions.Logging;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// Continuous batching on one engine thread over the node's paged latent cache, split as nano-vllm splits it: this
/// is where requests come in, <see cref="SchedulePolicy"/> decides each step, <see cref="EngineLoop"/> runs it,
/// samples and emits through the writers (<see cref="TokenEventWriter"/>, <see cref="KvSliceWriter"/>). A request
/// reserves every block its whole context can need when it is submitted, or is refused at once with a
/// <see cref="GenerationFailure"/> of kind ResourceExhausted, then waits for one of MaxBatch slots. Three kinds of
/// sequence: a generation prefilled here, a Prefill call whose cache streams out layer by layer as each chunk's layer
/// is done, and a generation whose cache came from a prefill node and joins the batch directly. A failed request's
/// stream ends with a GenerationFailure, a cancelled one's with an OperationCanceledException.
/// </summary>
public sealed class BatchScheduler : IAsyncDisposable
{
    private readonly LatentCacheManager _caches;
    private readonly SchedulerOptions _options;
    private readonly int _vocab;
    private readonly int[] _eos;
    private readonly EngineLoop _loop;

    /// <param name="textVocab">Ids at or above it have no text (checkpoints pad the vocabulary) and are never sampled.</param>
    /// <param name="eos">Ids that end every request, besides its own stop ids.</param>
    public BatchScheduler(Transformer model, LatentCacheManager caches, SchedulerOptions options, int textVocab, IReadOnlyCollection<int> eos, ILogger log)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.PrefillChunk, 1);
        _caches = caches;
        _options = options;
        _vocab = model.Config.VocabSize;
        _eos = [.. eos];
        _loop = new EngineLoop(model, caches, options, Counters, textVocab, log);
    }

    public SchedulerCounters Counters { get; } = new();

    public LatentCacheManager Caches => _caches;

    public SchedulerOptions Options => _options;

    /// <summary>
    /// Queues a request prefilled and decoded here, reusing a cached prefix when the prefix cache is on. Throws
    /// ResourceExhausted when its whole context does not fit the cache now. Cancelling <paramref name="cancel"/>
    /// removes it and frees its blocks.
    /// </summary>
    public ChannelReader<TokenEvent> Submit(GenerationRequest request, CancellationToken cancel)
    {
        Sequence seq = Sequence.ForGeneration(WithEos(request), NewSampler(request), cancel);
        StartPrefill(seq, request.Prompt.Length + request.MaxTokens);
        _loop.Enqueue(seq);
        return seq.Events!.Reader;
    }

    /// <summary>
    /// Queues a Prefill call: the stream gets the header and the reused prefix rows at once, then each chunk's rows
    /// layer by layer as the engine computes them, then KvDone with the first token (its checksum left for the
    /// sender to fill). Throws ResourceExhausted when the prompt does not fit the cache now.
    /// </summary>
    public ChannelReader<KvTransfer> SubmitPrefill(GenerationRequest request, CancellationToken cancel)
    {
        Sequence seq = Sequence.ForTransfer(WithEos(request), NewSampler(request), cancel);
        StartPrefill(seq, request.Prompt.Length);
        KvSliceWriter output = seq.Transfer!;
        try
        {
            output.WriteHeader(_caches, request.Prompt.Length, seq.CachedPrompt);
            for (int l = 0; l < _caches.Layers; l++) output.WriteRows(seq.Cache!, l, 0, seq.CachedPrompt);
        }
        catch (Exception e)
        {
            _loop.Close(seq, e);
            throw;
        }
        _loop.Enqueue(seq);
        return output.Reader;
    }

    /// <summary>
    /// Reserves blocks for <paramref name="maxLength"/> positions, or throws ResourceExhausted naming the need.
    /// The caller owns the cache until it hands it to <see cref="SubmitPrefilled"/> or releases it.
    /// </summary>
    public PagedLatentCache Reserve(ReadOnlySpan<int> prompt, int maxLength, bool reusePrefix)
    {
        int need = _caches.BlocksFor(maxLength);
        if (need > _caches.TotalBlocks)
            throw new GenerationFailure(GenerationFailureKind.ResourceExhausted, $"attention node {_options.NodeId}: kv cache too small: request needs {need} blocks, the cache has {_caches.TotalBlocks}");
        return _caches.TryStart(prompt, maxLength, reusePrefix)
            ?? throw new GenerationFailure(GenerationFailureKind.ResourceExhausted, $"attention node {_options.NodeId}: kv cache full: request needs {need} blocks, {_caches.Stats().AvailableBlocks} available");
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
        _loop.Enqueue(seq);
        return seq.Events!.Reader;
    }

    private GenerationRequest WithEos(GenerationRequest request) => request with { StopIds = [.. request.StopIds, .. _eos] };

    /// <summary>A sampler where the request's sequence stands: past the draws of tokens sampled on another node.</summary>
    private Sampler NewSampler(GenerationRequest request)
    {
        var sampler = new Sampler(request.Sampling, _vocab);
        for (int i = 0; i < request.SampledBefore; i++) sampler.SkipDraw();
        return sampler;
    }

    private void StartPrefill(Sequence seq, int maxLength)
    {
        int[] prompt = seq.Request.Prompt;
        PagedLatentCache cache = Reserve(prompt, maxLength, _options.PrefixCache);
        seq.Cache = cache;
        seq.CachedPrompt = cache.CachedPrefix;
        seq.PendingPrompt = prompt.Length - cache.Length;
        Counters.AddQueuedPrompt(seq.PendingPrompt);
    }

    public ValueTask DisposeAsync() => _loop.DisposeAsync();
}
