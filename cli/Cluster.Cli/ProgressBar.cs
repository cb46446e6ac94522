using System.Diagnostics;
using Cluster.Engine.Checkpoints;

namespace Cluster.Cli;

/// <summary>
/// A one-line byte progress bar on stderr, redrawn at most every 100 ms (reports may come from worker threads).
/// Silent when stderr is not a terminal, so logs stay quiet.
/// </summary>
public sealed class ProgressBar(string label) : IProgress<ByteProgress>
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _lock = new();
    private long _lastDrawMs = -1000;
    private bool _drawn;

    public void Report(ByteProgress p)
    {
        if (Console.IsErrorRedirected) return;
        lock (_lock)
        {
            long now = _clock.ElapsedMilliseconds;
            if (now - _lastDrawMs < 100 && p.Done < p.Total) return;
            _lastDrawMs = now;
            double f = p.Total == 0 ? 1 : (double)p.Done / p.Total;
            int filled = (int)(f * 30);
            Console.Error.Write($"\r{label} [{new string('#', filled)}{new string('.', 30 - filled)}] {Bytes(p.Done)} / {Bytes(p.Total)} {f * 100,3:F0}%  ");
            _drawn = true;
        }
    }

    /// <summary>Ends the bar's line.</summary>
    public void Finish()
    {
        lock (_lock) if (_drawn) { Console.Error.WriteLine(); _drawn = false; }
    }

    public static string Bytes(long n) => n switch
    {
        >= 1L << 30 => $"{n / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{n / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{n / 1024.0:F1} KiB",
        _ => $"{n} B",
    };
}
