using System.Text;

namespace Cluster.Gateway.Generation;

/// <summary>
/// Finds the first stop string in text that arrives in pieces: the one that is complete first (ends earliest; of two
/// ending together, the longer), as if the text had come one character at a time, so the result never depends on how
/// tokens split it. Text is released only once no stop string can begin in it, so a stop string split across tokens
/// is never partly shown; the stop string itself is never released. One instance per request; not thread-safe.
/// </summary>
public sealed class StopMatcher(IReadOnlyList<string> stops)
{
    private readonly StringBuilder _held = new();

    /// <summary>Set once a stop string was seen; nothing after it is released.</summary>
    public bool Stopped { get; private set; }

    /// <summary>The text this piece makes safe to show (possibly empty).</summary>
    public string Push(string piece)
    {
        if (Stopped) return "";
        if (stops.Count == 0) return piece;
        _held.Append(piece);
        string text = _held.ToString();
        int first = -1, firstEnd = int.MaxValue;
        foreach (string stop in stops)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at < 0) continue;
            int end = at + stop.Length;
            if (end < firstEnd || (end == firstEnd && at < first)) (first, firstEnd) = (at, end);
        }
        _held.Clear();
        if (first >= 0)
        {
            Stopped = true;
            return text[..first];
        }
        int keep = HeldBackLength(text);
        _held.Append(text, text.Length - keep, keep);
        return text[..^keep];
    }

    /// <summary>Ends the text: what was held back as a possible stop string's start is released.</summary>
    public string Flush()
    {
        string rest = Stopped ? "" : _held.ToString();
        _held.Clear();
        return rest;
    }

    /// <summary>Length of the longest suffix of <paramref name="text"/> that is a proper prefix of some stop string.</summary>
    private int HeldBackLength(string text)
    {
        int longest = 0;
        foreach (string stop in stops)
            for (int n = Math.Min(stop.Length - 1, text.Length); n > longest; n--)
                if (text.AsSpan(text.Length - n).SequenceEqual(stop.AsSpan(0, n))) { longest = n; break; }
        return longest;
    }
}
