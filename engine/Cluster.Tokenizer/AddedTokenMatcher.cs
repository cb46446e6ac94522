namespace Cluster.Tokenizer;

/// <summary>
/// Finds added tokens in text the way Hugging Face's added vocabulary does: leftmost match, longest token at that
/// position; lstrip/rstrip swallow the white space beside the token; single_word tokens only match outside words.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<string, AddedToken> _byContent = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AddedToken>.AlternateLookup<ReadOnlySpan<char>> _bySpan;
    private readonly System.Buffers.SearchValues<char> _firstChars;
    private readonly int[] _lengths; // distinct token lengths, longest first

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        foreach (AddedToken t in tokens)
            if (t.Content.Length > 0) _byContent[t.Content] = t;
        _bySpan = _byContent.GetAlternateLookup<ReadOnlySpan<char>>();
        _firstChars = System.Buffers.SearchValues.Create(_byContent.Keys.Select(k => k[0]).Distinct().ToArray());
        _lengths = _byContent.Keys.Select(k => k.Length).Distinct().OrderDescending().ToArray();
    }

    public bool IsEmpty => _byContent.Count == 0;

    /// <summary>The next match in <paramref name="s"/> at or after <paramref name="from"/>: [start, end) is the text it
    /// consumes, white space stripped by lstrip/rstrip included.</summary>
    public bool Find(ReadOnlySpan<char> s, int from, out int start, out int end, out AddedToken? token)
    {
        for (int i = from; i < s.Length; i++)
        {
            int hit = s[i..].IndexOfAny(_firstChars);
            if (hit < 0) break;
            i += hit;
            foreach (int len in _lengths)
            {
                if (i + len > s.Length || !_bySpan.TryGetValue(s.Slice(i, len), out AddedToken? t)) continue;
                if (t.SingleWord && (IsWordCharBefore(s, i) || IsWordCharAt(s, i + len))) continue;
                start = i;
                end = i + len;
                if (t.LeftStrip) while (start > from && char.IsWhiteSpace(s[start - 1])) start--;
                if (t.RightStrip) while (end < s.Length && char.IsWhiteSpace(s[end])) end++;
                token = t;
                return true;
            }
        }
        start = end = s.Length;
        token = null;
        return false;
    }

    private static bool IsWordCharBefore(ReadOnlySpan<char> s, int i) => i > 0 && IsWordChar(s[i - 1]);
    private static bool IsWordCharAt(ReadOnlySpan<char> s, int i) => i < s.Length && IsWordChar(s[i]);
    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
}
