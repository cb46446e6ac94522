using System.Globalization;

namespace Cluster.Cli;

/// <summary>
/// A size in bytes as a user writes it: plain bytes, or a number with K, M, G, T (powers of 1024, as Java's -Xmx and
/// Docker's --memory read them) or their explicit forms KiB, MiB, GiB, TiB. Fractions are allowed before a suffix
/// ("1.5G") and rounded down to whole bytes.
/// </summary>
public static class ByteSize
{
    public const string Forms = "bytes, or a number with K, M, G, T, KiB, MiB, GiB or TiB";

    public static bool TryParse(string text, out long bytes)
    {
        bytes = 0;
        ReadOnlySpan<char> s = text.AsSpan().Trim();
        int digits = 0;
        while (digits < s.Length && (char.IsAsciiDigit(s[digits]) || s[digits] == '.')) digits++;
        if (digits == 0) return false;
        ReadOnlySpan<char> number = s[..digits], suffix = s[digits..].Trim();
        int shift;
        if (suffix.IsEmpty) shift = 0;
        else if (!TryShift(suffix, out shift)) return false;
        if (shift == 0)
            return number.IndexOf('.') < 0 && long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out bytes);
        if (!decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal value)) return false;
        decimal scaled = value * (1L << shift);
        if (scaled > long.MaxValue) return false;
        bytes = (long)decimal.Floor(scaled);
        return true;
    }

    private static bool TryShift(ReadOnlySpan<char> suffix, out int shift)
    {
        shift = char.ToUpperInvariant(suffix[0]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
        if (shift == 0) return false;
        ReadOnlySpan<char> rest = suffix[1..];
        // "K" or "KiB" (any case of the letters); "KB" is left out: it means 1000 to some and 1024 to others.
        return rest.IsEmpty || rest.Equals("iB", StringComparison.OrdinalIgnoreCase);
    }
}
