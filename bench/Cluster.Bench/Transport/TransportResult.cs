namespace Cluster.Bench.Transport;

/// <summary>What one measurement moved: messages (or calls), payload bytes, and the seconds it took.</summary>
public readonly record struct TransportResult(long Messages, long Bytes, double Seconds)
{
    public double PerSecond => Seconds > 0 ? Messages / Seconds : 0;
    public double BytesPerSecond => Seconds > 0 ? Bytes / Seconds : 0;

    /// <summary>The better of two rounds (a zero result counts as none yet).</summary>
    public static TransportResult Best(TransportResult a, TransportResult b) => a.Seconds == 0 || b.PerSecond > a.PerSecond ? b : a;
}
