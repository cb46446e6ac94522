using System.Globalization;

namespace Cluster.Tokenizer;

/// <summary>
/// Finds added tokens in text the way Hugging Face's added vocabulary does: leftmost match, longest token at that
/// position; lstrip/rstrip swallow the white space beside the token (lstrip never past the previous match);
/// single_word tokens only match outside words.
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
                if (t.SingleWord && (IsWordCharBefore(s, i) || IsWordCharAt(s, i + len)))
                {
                    // Hugging Face discards the longest match inside a word and resumes the search after it.
                    i += len - 1;
                    break;
                }
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

    private static bool IsWordCharBefore(ReadOnlySpan<char> s, int i)
    {
        if (i == 0) return false;
        int at = i >= 2 && char.IsLowSurrogate(s[i - 1]) && char.IsHighSurrogate(s[i - 2]) ? i - 2 : i - 1;
        return IsWordChar(CharKinds.CodePointAt(s, at, out _));
    }

    private static bool IsWordCharAt(ReadOnlySpan<char> s, int i) => i < s.Length && IsWordChar(CharKinds.CodePointAt(s, i, out _));

    /// <summary>Rust regex's \w: letters, marks, decimal and letter numbers, connector punctuation, joiners.</summary>
    private static bool IsWordChar(int cp) => cp is 0x200C or 0x200D || CharUnicodeInfo.GetUnicodeCategory(cp) is
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
        or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
        or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.ConnectorPunctuation;
}
