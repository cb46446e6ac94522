using Cluster.Engine.Cache;
using Cluster.Protos.V1;
using Microsoft.Extensions.Logging;

namespace Cluster.AttentionNode;

/// <summary>Settings of one attention node.</summary>
public sealed record AttentionOptions
{
    /// <summary>The checkpoint directory (config.json, safetensors; tokenizer.json when present limits sampling to ids with text).</summary>
    public required string ModelDir { get; init; }
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>The gRPC port (cleartext HTTP/2); 0 binds a free port.</summary>
    public int Port { get; init; }
    /// <summary>An HTTP/1.1 port for GET /stats (JSON) and GET /metrics (Prometheus); null: none; 0: a free port.</summary>
    public int? HttpPort { get; init; }
    public string NodeId { get; init; } = "attention-0";
    /// <summary>How often a supervisor (<c>cluster up</c>) has restarted this node; reported in its statistics.</summary>
    public int Restarts { get; init; }
    /// <summary>The placement plan; null runs the routed experts in this process.</summary>
    public string? PlanPath { get; init; }
    public DispatchFormat Dispatch { get; init; } = DispatchFormat.Bf16;
    /// <summary>How long to wait for expert nodes that are still loading before giving up.</summary>
    public TimeSpan ExpertWait { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>At shutdown, how long requests already running may take to finish before their streams are closed.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>The cluster's credential: required of every caller of the node's services (health and reflection stay open) and put on its own calls to other roles; null accepts any caller.</summary>
    public Cluster.Transport.ClusterToken? ClusterToken { get; init; }
    /// <summary>Most sequences in one decode step; prompts in prefill count against it too.</summary>
    public int MaxBatch { get; init; } = 32;
    public LogLevel LogLevel { get; init; } = LogLevel.Warning;
    public NodeRole Role { get; init; } = NodeRole.Both;
    /// <summary>Most prompt tokens computed between two decode steps: longer prompts are prefilled in chunks of this many.</summary>
    public int PrefillChunk { get; init; } = 512;
    /// <summary>Memory of the paged latent cache; a request is admitted only while its whole context fits.</summary>
    public long KvCacheBytes { get; init; } = 1L << 30;
    /// <summary>
    /// Makes the whole cache resident at start (what `cluster serve attention` does): the node then holds the memory it
    /// admits requests against, instead of taking it page by page as new blocks are first used. Hosts embedded in
    /// tests leave it off so that many nodes fit one machine.
    /// </summary>
    public bool ReserveKvCache { get; init; }
    /// <summary>Tokens per cache block, the unit of allocation and of prefix reuse.</summary>
    public int KvBlockSize { get; init; } = 64;
    public LatentFormat KvCacheFormat { get; init; } = LatentFormat.BF16;
    /// <summary>Keeps the blocks of finished prompts and reuses them for prompts that start the same way.</summary>
    public bool PrefixCache { get; init; } = true;
    /// <summary>
    /// With remote experts, a step of two sequences or more runs as two micro-batches, one's attention computing while
    /// the other's rows are with the expert nodes (<see cref="Cluster.Engine.Model.Transformer.OverlapMicroBatches"/>).
    /// Off by default: it pays only where the expert nodes have cores of their own (bench/RESULTS.md measured it
    /// slower with every role on one machine's cores).
    /// </summary>
    public bool MicroBatchOverlap { get; init; }

    /// <summary>Locks the node's weights into memory once resident (mlock), so memory pressure never pages them out.</summary>
    public bool LockWeights { get; init; }

    /// <summary>Throws an ArgumentException naming the first setting out of range (by its command-line flag).</summary>
    public void Validate()
    {
        if (!Role.IsServed()) throw new ArgumentException($"--role: unknown role {(int)Role} (expected prefill, decode or both)");
        if (HttpPort is < 0 or > 65535) throw new ArgumentException($"--http-port must be in 0..65535 (got {HttpPort})");
        if (MaxBatch < 1) throw new ArgumentException($"--max-batch must be at least 1 (got {MaxBatch})");
        if (PrefillChunk < 1) throw new ArgumentException($"--prefill-chunk must be at least 1 token (got {PrefillChunk})");
        if (KvBlockSize < 1) throw new ArgumentException($"--kv-block-size must be at least 1 token (got {KvBlockSize})");
        if (KvCacheBytes < 1) throw new ArgumentException($"--kv-cache-bytes must be positive (got {KvCacheBytes})");
        if (!Enum.IsDefined(KvCacheFormat)) throw new ArgumentException($"--kv-cache-dtype: unknown format {(int)KvCacheFormat} (expected bf16 or f32)");
    }
}
