namespace Cluster.Transport.Legacy;

/// <summary>Per-call settings: a deadline (absolute) or timeout (relative), headers, cancellation and compression.</summary>
public sealed record CallOptions
{
    public static readonly CallOptions Default = new();

    /// <summary>UTC instant after which the call fails with DEADLINE_EXCEEDED; sent to the server as grpc-timeout.</summary>
    public DateTime? Deadline { get; init; }
    /// <summary>The same as a deadline of now + Timeout; ignored when Deadline is set.</summary>
    public TimeSpan? Timeout { get; init; }
    public Metadata? Headers { get; init; }
    public CancellationToken CancellationToken { get; init; }
    /// <summary>Compress request messages with gzip.</summary>
    public bool Gzip { get; init; }

    /// <summary>The absolute deadline; a timeout too long for a timer (over ~24 days) means none.</summary>
    internal DateTime? EffectiveDeadline() =>
        Deadline ?? (Timeout is { } t && t < GrpcTimeout.MaxTimer ? DateTime.UtcNow + t : null);
}
