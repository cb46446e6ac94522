using Cluster.AttentionNode.Scheduling;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.ExpertNode.Client;
using Cluster.Protos.V1;
using Microsoft.Extensions.Logging;

namespace Cluster.AttentionNode;

/// <summary>
/// The loaded side of an attention node: the checkpoint (without the routed experts' bytes when they are
/// remote), the model, its scheduler, and the per-expert token counts.
/// </summary>
internal sealed class NodeModel : IAsyncDisposable
{
    private readonly Checkpoint _checkpoint;
    private readonly ExpertStreams? _experts;
    private readonly int[] _moeLayers;
    private readonly long[][] _expertTokens;

    private NodeModel(Checkpoint checkpoint, ExpertStreams? experts, int[] moeLayers, long[][] expertTokens, BatchScheduler scheduler)
    {
        _checkpoint = checkpoint;
        _experts = experts;
        _moeLayers = moeLayers;
        _expertTokens = expertTokens;
        Scheduler = scheduler;
    }

    public ModelConfig Config => _checkpoint.Config;
    /// <summary>The streams to the expert nodes; null when the experts run here.</summary>
    public ExpertStreams? Experts => _experts;
    public BatchScheduler Scheduler { get; }

    /// <summary>
    /// Opens <paramref name="modelDir"/> and binds the model. With <paramref name="remote"/> (disposed with the node)
    /// every MoE layer reaches its routed experts through the expert streams, rows sent as <paramref name="dispatch"/>;
    /// otherwise the experts are loaded here.
    /// </summary>
    public static NodeModel Load(string modelDir, int maxBatch, ExpertStreams? remote, TensorDType dispatch, ILogger log, IProgress<double>? progress = null)
    {
        Checkpoint checkpoint = remote is null
            ? Checkpoint.Open(modelDir)
            : Checkpoint.Open(modelDir, name => !name.Contains(".mlp.experts.", StringComparison.Ordinal));
        try
        {
            ModelConfig config = checkpoint.Config;
            int[] moeLayers = [.. Enumerable.Range(0, config.NumHiddenLayers).Where(config.IsMoeLayer)];
            var counts = new long[config.NumHiddenLayers][];
            foreach (int l in moeLayers) counts[l] = new long[config.NRoutedExperts];
            Func<int, IRoutedExperts> experts = remote is null
                ? l => new ExpertLoadCounter(RoutedExperts.Load(checkpoint, config, l), counts[l])
                : l => new ExpertLoadCounter(remote.ForLayer(l, dispatch), counts[l]);
            Transformer model = Transformer.Load(config, checkpoint, progress, experts);
            var (textVocab, eos) = TokenizerFacts(modelDir, config, log);
            var scheduler = new BatchScheduler(model, new SequenceCachePool(config), maxBatch, textVocab, eos, log);
            return new NodeModel(checkpoint, remote, moeLayers, counts, scheduler);
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

    public AttentionStats Stats(string nodeId)
    {
        SchedulerCounters c = Scheduler.Counters;
        var stats = new AttentionStats
        {
            NodeId = nodeId,
            Role = "attention",
            Running = (uint)c.Running,
            Queued = (uint)c.Queued,
            PromptTokens = (ulong)c.PromptTokens,
            GeneratedTokens = (ulong)c.GeneratedTokens,
            CacheBytesUsed = (ulong)Scheduler.Caches.BytesInUse,
            ExpertsPerLayer = (uint)Config.NRoutedExperts,
        };
        foreach (int l in _moeLayers)
            foreach (ref long n in _expertTokens[l].AsSpan()) stats.ExpertTokens.Add((ulong)Interlocked.Read(ref n));
        return stats;
    }

    public async ValueTask DisposeAsync()
    {
        await Scheduler.DisposeAsync().ConfigureAwait(false);
        if (_experts is not null) await _experts.DisposeAsync().ConfigureAwait(false);
        _checkpoint.Dispose();
    }
}
