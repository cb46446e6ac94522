namespace Cluster.Bench.Transport;

/// <summary>One row of the transport table: how to run it on a side, and the number it reports.</summary>
public sealed record TransportMeasurement(string Name, string Format, Func<ITransportSide, double, Task<TransportResult>> Run, Func<TransportResult, double> Value)
{
    public const int OneMb = 1024 * 1024;

    public static TransportMeasurement Bidi1K { get; } = new("bidi stream, 1 KB frames, messages/s", "N0", (s, t) => s.BidiAsync(1024, t), r => r.PerSecond);
    public static TransportMeasurement Bidi1M { get; } = new("bidi stream, 1 MB frames, GB/s (payload echoed)", "F2", (s, t) => s.BidiAsync(OneMb, t), r => r.BytesPerSecond / 1e9);

    public static TransportMeasurement Unary(int concurrency) =>
        new($"unary calls/s ({concurrency} in flight)", "N0", (s, t) => s.UnaryAsync(concurrency, t), r => r.PerSecond);
}
