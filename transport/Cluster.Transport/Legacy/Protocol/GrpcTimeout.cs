using System.Globalization;

namespace Cluster.Transport.Legacy;

/// <summary>The grpc-timeout header: at most 8 ASCII digits and a unit (H, M, S, m, u, n).</summary>
public static class GrpcTimeout
{
    private const long MaxValue = 99_999_999;

    /// <summary>The longest timeout a timer can run (about 24 days); longer ones are treated as no deadline.</summary>
    public static readonly TimeSpan MaxTimer = TimeSpan.FromMilliseconds(int.MaxValue - 1);

    public static bool TryParse(string? text, out TimeSpan timeout)
    {
        timeout = default;
        if (text is null || text.Length < 2 || text.Length > 9) return false;
        if (!long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out long value)) return false;
        long ticks = text[^1] switch
        {
            'H' => value * TimeSpan.TicksPerHour,
            'M' => value * TimeSpan.TicksPerMinute,
            'S' => value * TimeSpan.TicksPerSecond,
            'm' => value * TimeSpan.TicksPerMillisecond,
            'u' => value * 10,
            // Round nanoseconds up so a tiny positive timeout never becomes zero.
            'n' => (value + 99) / 100,
            _ => -1,
        };
        if (ticks < 0) return false;
        timeout = TimeSpan.FromTicks(ticks);
        return true;
    }

    /// <summary>The shortest unit that keeps the value within 8 digits, rounded up so the server never sees a later deadline.</summary>
    public static string Format(TimeSpan timeout)
    {
        long ticks = Math.Max(0, timeout.Ticks);
        // Units as (ticks per unit, suffix), finest first; nanoseconds are covered by 100 ns ticks.
        ReadOnlySpan<long> per = [1, 10, TimeSpan.TicksPerMillisecond, TimeSpan.TicksPerSecond, TimeSpan.TicksPerMinute, TimeSpan.TicksPerHour];
        ReadOnlySpan<char> unit = ['n', 'u', 'm', 'S', 'M', 'H'];
        for (int i = 0; i < per.Length; i++)
        {
            long value = i == 0 ? ticks * 100 : (ticks + per[i] - 1) / per[i];
            if (value <= MaxValue) return value.ToString(CultureInfo.InvariantCulture) + unit[i];
        }
        return MaxValue.ToString(CultureInfo.InvariantCulture) + "H";
    }
}
