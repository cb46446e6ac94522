namespace Cluster.ExpertNode.Host;

/// <summary>What <c>cluster serve expert</c> takes.</summary>
public sealed record ExpertHostOptions
{
    public required string ModelDir { get; init; }
    public required string PlanPath { get; init; }
    public required string NodeId { get; init; }
    /// <summary>Bind address.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 binds any free port.</summary>
    public int Port { get; init; }
    /// <summary>Information-level logs on stderr (warnings and errors otherwise).</summary>
    public bool Verbose { get; init; }
}
