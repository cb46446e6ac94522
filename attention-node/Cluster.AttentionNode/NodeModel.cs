using Cluster.AttentionNode.Scheduling;
using Cluster.AttentionNode.Transfer;
using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.ExpertNode.Client;
using Cluster.Protos.V1;
using Cluster.Transport;
using Microsoft.Extensions.Logging;

namespace Cluster.AttentionNode;

/// <summary>
/// The loaded side of an attention node: the checkpoint (without the routed experts' bytes when they are
/// remote), the model, the paged latent cache and the scheduler over them, the channels to prefill nodes (a
/// decode node's KV transfers), and the per-expert token counts.
/// </summary>
internal sealed class NodeModel : IAsyncDisposable
{
    private readonly Checkpoint _checkpoint;
    private readonly ExpertStreams? _experts;
    private readonly int[] _moeLayers;
    private readonly long[][] _expertTokens;

    private readonly PrefillPeers _peers;

    private NodeModel(Checkpoint checkpoint, ExpertStreams? experts, int[] moeLayers, long[][] expertTokens, BatchScheduler scheduler, NodeRole role, ClusterToken? token)
    {
        _peers = new PrefillPeers(token);
        _checkpoint = checkpoint;
        _experts = experts;
        _moeLayers = moeLayers;
        _expertTokens = expertTokens;
        Scheduler = scheduler;
        Role = role;
        Receiver = new KvReceiver(scheduler.Options.NodeId, _peers, scheduler.Caches, scheduler.Counters);
    }

    public ModelConfig Config => _checkpoint.Config;
    /// <summary>The streams to the expert nodes; null when the experts run here.</summary>
    public ExpertStreams? Experts => _experts;
    public BatchScheduler Scheduler { get; }
    /// <summary>Tokens routed to each logical expert, per layer (null for dense layers).</summary>
    public long[]?[] ExpertTokens => _expertTokens;
    public NodeRole Role { get; }
    /// <summary>Fetches a request's prompt cache from its prefill node.</summary>
    public KvReceiver Receiver { get; }

    /// <summary>
    /// Opens the options' model directory and binds the model. With <paramref name="remote"/> (disposed with the
    /// node) every MoE layer reaches its routed experts through the expert streams, rows sent as
    /// <paramref name="dispatch"/>; otherwise the experts are loaded here.
    /// </summary>
    public static NodeModel Load(AttentionOptions options, ExpertStreams? remote, TensorDType dispatch, ILogger log, IProgress<double>? progress = null)
    {
        string modelDir = options.ModelDir;
        Checkpoint checkpoint = remote is null
            ? Checkpoint.Open(modelDir)
            : Checkpoint.Open(modelDir, name => !name.Contains(".mlp.experts.", StringComparison.Ordinal));
        try
        {
            ModelConfig config = checkpoint.Config;
            // The first requests should not pay the weights' page faults (or, with a cold page cache, their reads).
            var clock = System.Diagnostics.Stopwatch.StartNew();
            checkpoint.Prefault();
            if (options.LockWeights) checkpoint.Lock();
            log.LogInformation("{Bytes:N0} bytes of weights resident{Locked} in {Seconds:F1} s", checkpoint.LoadedBytes, options.LockWeights ? " and locked" : "", clock.Elapsed.TotalSeconds);
            int[] moeLayers = [.. Enumerable.Range(0, config.NumHiddenLayers).Where(config.IsMoeLayer)];
            var counts = new long[config.NumHiddenLayers][];
            foreach (int l in moeLayers) counts[l] = new long[config.NRoutedExperts];
            Func<int, IRoutedExperts> experts = remote is null
                ? l => new ExpertLoadCounter(RoutedExperts.Load(checkpoint, config, l), counts[l])
                : l => ExpertLoadCounter.For(remote.ForLayer(l, dispatch), counts[l]);
            Transformer model = Transformer.Load(config, checkpoint, progress, experts);
            model.OverlapMicroBatches = options.MicroBatchOverlap;
            var (textVocab, eos) = TokenizerFacts(modelDir, config, log);
            LatentCacheManager caches;
            // The options were validated, so what is left to refuse is a budget too small for one block.
            try { caches = new LatentCacheManager(config, new LatentCacheOptions { BlockSize = options.KvBlockSize, BudgetBytes = options.KvCacheBytes, Format = options.KvCacheFormat }); }
            catch (ArgumentException e) { throw new ArgumentException($"--kv-cache-bytes: {e.Message}", e); }
            if (options.ReserveKvCache)
            {
                clock.Restart();
                caches.Memory.Reserve();
                log.LogInformation("{Bytes:N0} bytes of latent cache ({Blocks} blocks) resident in {Seconds:F1} s", (long)caches.TotalBlocks * caches.BlockBytes, caches.TotalBlocks, clock.Elapsed.TotalSeconds);
            }
            var scheduler = new BatchScheduler(model, caches, new SchedulerOptions(options.NodeId, options.MaxBatch, options.PrefillChunk, options.PrefixCache), textVocab, eos, log);
            return new NodeModel(checkpoint, remote, moeLayers, counts, scheduler, options.Role, options.ClusterToken);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checkpoints pad vocab_size beyond the tokenizer (DeepSeek-V3: 129280 ids, 128815 with text); ids without
    /// text are never sampled, as in <c>cluster generate</c>. The tokenizer's EOS ends generation too.
    /// </summary>
    private static (int TextVocab, HashSet<int> Eos) TokenizerFacts(string modelDir, ModelConfig config, ILogger log)
    {
        var eos = new HashSet<int>(config.EosTokenIds);
        if (!File.Exists(Path.Combine(modelDir, "tokenizer.json")))
        {
            log.LogInformation("{Dir}: no tokenizer.json; every id of the vocabulary can be sampled", modelDir);
            return (config.VocabSize, eos);
        }
        var tokenizer = Tokenizer.Tokenizer.FromDirectory(modelDir);
        if (tokenizer.EosId is int id) eos.Add(id);
        return (Math.Min(tokenizer.VocabSize, config.VocabSize), eos);
    }

    public AttentionStats Stats(string nodeId, int restarts)
    {
        SchedulerCounters c = Scheduler.Counters;
        LatentCacheManager caches = Scheduler.Caches;
        LatentCacheStats blocks = caches.Stats();
        var stats = new AttentionStats
        {
            NodeId = nodeId,
            Role = Role,
            Running = (uint)c.Running,
            Queued = (uint)c.Queued,
            PromptTokens = (ulong)c.PromptTokens,
            GeneratedTokens = (ulong)c.GeneratedTokens,
            CacheBytesUsed = (ulong)(blocks.UsedBlocks * caches.BlockBytes),
            ExpertsPerLayer = (uint)Config.NRoutedExperts,
            BlockSize = (uint)caches.BlockSize,
            BlocksTotal = (uint)blocks.TotalBlocks,
            BlocksUsed = (uint)blocks.UsedBlocks,
            BlocksCached = (uint)blocks.CachedBlocks,
            BlocksAvailable = (uint)blocks.AvailableBlocks,
            KvCacheBytes = (ulong)(blocks.TotalBlocks * caches.BlockBytes),
            PrefixLookupTokens = (ulong)blocks.LookupTokens,
            PrefixHitTokens = (ulong)blocks.HitTokens,
            QueuedPromptTokens = (ulong)c.QueuedPromptTokens,
            KvBytesSent = (ulong)c.KvBytesSent,
            KvBytesReceived = (ulong)c.KvBytesReceived,
            PrefillChunk = (uint)Scheduler.Options.PrefillChunk,
            Restarts = (uint)restarts,
        };
        foreach (int l in _moeLayers)
            foreach (ref long n in _expertTokens[l].AsSpan()) stats.ExpertTokens.Add((ulong)Interlocked.Read(ref n));
        return stats;
    }

    public async ValueTask DisposeAsync()
    {
        await Scheduler.DisposeAsync().ConfigureAwait(false);
        // Transfers still in flight fail (UNAVAILABLE) and release their caches.
        _peers.Dispose();
        if (_experts is not null) await _experts.DisposeAsync().ConfigureAwait(false);
        _checkpoint.Dispose();
    }
}
