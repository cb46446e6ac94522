namespace Cluster.Bench.Transport;

/// <summary>
/// One gRPC implementation under test in the transport benchmark: a client connected to a server, on loopback.
/// Each measurement runs for <c>seconds</c> and reports what it moved; the benchmark alternates sides round by round.
/// </summary>
public interface ITransportSide : IAsyncDisposable
{
    /// <summary>The column heading, e.g. "new (Grpc.AspNetCore)".</summary>
    string Name { get; }

    /// <summary>One cluster.v1.TensorStream/Exchange stream: frames of <paramref name="frameBytes"/> written as fast as flow control allows, echoes counted.</summary>
    Task<TransportResult> BidiAsync(int frameBytes, double seconds);

    /// <summary>cluster.v1.Echo/Unary with a 16-byte payload, <paramref name="concurrency"/> calls in flight on one channel.</summary>
    Task<TransportResult> UnaryAsync(int concurrency, double seconds);
}
