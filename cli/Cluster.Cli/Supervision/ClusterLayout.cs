namespace Cluster.Cli.Supervision;

/// <summary>What <c>cluster up</c> starts: the model, the public ports, how many nodes of each role, and their settings.</summary>
public sealed record ClusterLayout(
    string ModelDir,
    int HttpPort,
    int GrpcPort,
    int AttentionNodes,
    int ExpertNodes,
    int RedundantExperts,
    string Dispatch,
    string? ExpertLoadPath,
    int MaxBatch,
    bool Verbose);
