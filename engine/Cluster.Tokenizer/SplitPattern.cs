namespace Cluster.Tokenizer;

/// <summary>
/// One Split regex of the pre-tokenizer, hand-written to match exactly what Oniguruma (Hugging Face's regex engine)
/// matches for that pattern. .NET's Regex tests UTF-16 code units, so \p{L} misses every letter outside the BMP; these
/// matchers work on code points instead, and are several times faster.
/// </summary>
internal abstract class SplitPattern
{
    public const string DigitRunsPattern = @"\p{N}{1,3}";
    public const string CjkRunsPattern = "[一-龥぀-ゟ゠-ヿ]+";
    public const string WordsPattern =
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

    /// <summary>The matcher for a pattern string from tokenizer.json, or null when none is implemented for it.</summary>
    public static SplitPattern? For(string regex) => regex switch
    {
        DigitRunsPattern => new DigitRuns(),
        CjkRunsPattern => new CjkRuns(),
        WordsPattern => new Words(),
        _ => null,
    };

    /// <summary>The leftmost match starting at or after <paramref name="from"/>, as the regex would find it.</summary>
    public bool Find(ReadOnlySpan<char> s, int from, out int start, out int end)
    {
        for (int i = from; i < s.Length;)
        {
            end = MatchAt(s, i, out int length);
            if (end > i) { start = i; return true; }
            i += length;
        }
        start = end = s.Length;
        return false;
    }

    /// <summary>End of the match beginning exactly at <paramref name="i"/>, or <paramref name="i"/> when none;
    /// <paramref name="length"/> is the UTF-16 length of the code point at i.</summary>
    protected abstract int MatchAt(ReadOnlySpan<char> s, int i, out int length);

    protected static int RunOf(ReadOnlySpan<char> s, int i, CharKind kinds)
    {
        while (i < s.Length)
        {
            int cp = CharKinds.CodePointAt(s, i, out int len);
            if ((CharKinds.Of(cp) & kinds) == 0) break;
            i += len;
        }
        return i;
    }

    /// <summary>\p{N}{1,3}</summary>
    private sealed class DigitRuns : SplitPattern
    {
        protected override int MatchAt(ReadOnlySpan<char> s, int i, out int length)
        {
            CharKinds.CodePointAt(s, i, out length);
            int end = i;
            for (int n = 0; n < 3 && end < s.Length; n++)
            {
                int cp = CharKinds.CodePointAt(s, end, out int len);
                if ((CharKinds.Of(cp) & CharKind.Number) == 0) break;
                end += len;
            }
            return end;
        }
    }

    /// <summary>[一-龥぀-ゟ゠-ヿ]+ : CJK unified ideographs U+4E00..U+9FA5, hiragana and katakana U+3040..U+30FF.</summary>
    private sealed class CjkRuns : SplitPattern
    {
        protected override int MatchAt(ReadOnlySpan<char> s, int i, out int length)
        {
            CharKinds.CodePointAt(s, i, out length);
            int end = i;
            while (end < s.Length && IsCjk(s[end])) end++;
            return end;
        }

        private static bool IsCjk(char c) => c is (>= '\u4E00' and <= '\u9FA5') or (>= '\u3040' and <= '\u30FF');
    }

    /// <summary>The main pattern; the alternatives are tried in order at each position, as a backtracking engine does.</summary>
    private sealed class Words : SplitPattern
    {
        protected override int MatchAt(ReadOnlySpan<char> s, int i, out int length)
        {
            int c0 = CharKinds.CodePointAt(s, i, out length);
            CharKind k0 = CharKinds.Of(c0);
            int next = i + length;

            // [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+
            if (c0 < 0x80 && char.IsAsciiLetter(next < s.Length ? s[next] : '\0') && IsAsciiPunctuation(c0))
            {
                int j = next + 1;
                while (j < s.Length && char.IsAsciiLetter(s[j])) j++;
                return j;
            }

            // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
            if (c0 is not ('\r' or '\n') && (k0 & (CharKind.Letter | CharKind.Punctuation | CharKind.Symbol)) == 0)
            {
                int j = RunOf(s, next, CharKind.Letter | CharKind.Mark);
                if (j > next) return j;
            }
            if ((k0 & (CharKind.Letter | CharKind.Mark)) != 0) return RunOf(s, next, CharKind.Letter | CharKind.Mark);

            //  ?[\p{P}\p{S}]+[\r\n]*
            int p = -1;
            if ((k0 & (CharKind.Punctuation | CharKind.Symbol)) != 0) p = i;
            else if (c0 == ' ' && next < s.Length)
            {
                int c1 = CharKinds.CodePointAt(s, next, out _);
                if ((CharKinds.Of(c1) & (CharKind.Punctuation | CharKind.Symbol)) != 0) p = next;
            }
            if (p >= 0)
            {
                int j = RunOf(s, p, CharKind.Punctuation | CharKind.Symbol);
                while (j < s.Length && s[j] is '\r' or '\n') j++;
                return j;
            }

            if ((k0 & CharKind.Space) == 0) return i;
            int end = RunOf(s, next, CharKind.Space);
            // \s*[\r\n]+ : backtracking from the end of the run stops at its last line break.
            for (int k = end - 1; k >= i; k--)
                if (s[k] is '\r' or '\n') return k + 1;
            // \s+(?!\S) gives back the last space before a non-space; \s+ takes a single space alone.
            if (end == s.Length || end - length == i) return end;
            return end - 1; // every white-space code point is in the BMP, so the last one is one char
        }

        private static bool IsAsciiPunctuation(int c) =>
            c is (>= '!' and <= '/') or (>= ':' and <= '@') or (>= '[' and <= '`') or (>= '{' and <= '~');
    }
}
