using Cluster.AttentionNode;

namespace Cluster.Cli.Supervision;

/// <summary>
/// What <c>cluster up</c> starts: the model, the public ports, how many nodes of each role, and their settings.
/// Settings left null are not passed, so each role's own default applies.
/// </summary>
public sealed record ClusterLayout
{
    public required string ModelDir { get; init; }
    public required int HttpPort { get; init; }
    public required int GrpcPort { get; init; }
    /// <summary>Attention nodes of role both: each prefills and decodes its own requests.</summary>
    public required int AttentionNodes { get; init; }
    public required int PrefillNodes { get; init; }
    public required int DecodeNodes { get; init; }
    public required int ExpertNodes { get; init; }
    public required int RedundantExperts { get; init; }
    /// <summary>Distinct expert nodes each logical expert is on at least.</summary>
    public int ExpertReplicas { get; init; } = 1;
    /// <summary>Kernel threads of each expert node (its `--threads`); null: the machine's cores shared among the expert nodes.</summary>
    public int? ExpertThreads { get; init; }
    /// <summary>Every attention and expert node locks its weights into memory (their `--lock-weights`).</summary>
    public bool LockWeights { get; init; }
    public required DispatchFormat Dispatch { get; init; }
    public string? ExpertLoadPath { get; init; }
    public required int MaxBatch { get; init; }
    /// <summary>Prefill chunk and latent cache settings for every attention node.</summary>
    public required AttentionNodeSettings NodeSettings { get; init; }
    /// <summary>The gateway's max_tokens for requests that give none.</summary>
    public int? DefaultMaxTokens { get; init; }
    /// <summary>The gateway's automatic rebalance interval (its `--rebalance-interval`); null: rebalance only on command.</summary>
    public double? RebalanceSeconds { get; init; }
    /// <summary>The skew (expected max/mean rows per expert node) the automatic rebalance acts on; null: the gateway's default.</summary>
    public double? RebalanceThreshold { get; init; }
    public bool Verbose { get; init; }
    /// <summary>Where the cluster's token is kept: read when the file exists, else generated and written there; null: a fresh one in the run's folder.</summary>
    public string? ClusterTokenPath { get; init; }
    /// <summary>Where the cluster's TLS is kept (ca.crt, tls.crt, tls.key): read when it holds them, else generated there; null: no TLS.</summary>
    public string? ClusterTlsDir { get; init; }
}
