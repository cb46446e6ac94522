using System.Globalization;

namespace Cluster.Tokenizer;

/// <summary>The character classes the pre-tokenizer patterns test, as bit flags of one code point.</summary>
[Flags]
internal enum CharKind : byte
{
    None = 0,
    Letter = 1,      // \p{L}
    Mark = 2,        // \p{M}
    Number = 4,      // \p{N}
    Punctuation = 8, // \p{P}
    Symbol = 16,     // \p{S}
    Space = 32,      // \s as Oniguruma defines it: the Unicode White_Space property
}

/// <summary>Classifies code points; the BMP comes from a table so the hot loop never calls into globalization.</summary>
internal static class CharKinds
{
    private static readonly CharKind[] s_bmp = BuildBmp();

    public static CharKind Of(int codePoint) => codePoint < 0x10000 ? s_bmp[codePoint] : Classify(codePoint);

    /// <summary>Reads one code point at <paramref name="i"/>; a lone surrogate reads as U+FFFD, as UTF-8 encoding will write it.</summary>
    public static int CodePointAt(ReadOnlySpan<char> s, int i, out int length)
    {
        char c = s[i];
        length = 1;
        if (!char.IsSurrogate(c)) return c;
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            length = 2;
            return char.ConvertToUtf32(c, s[i + 1]);
        }
        return 0xFFFD;
    }

    private static CharKind[] BuildBmp()
    {
        var table = new CharKind[0x10000];
        for (int cp = 0; cp < table.Length; cp++)
            table[cp] = cp is >= 0xD800 and <= 0xDFFF ? CharKind.None : Classify(cp);
        return table;
    }

    private static CharKind Classify(int cp)
    {
        CharKind kind = CharUnicodeInfo.GetUnicodeCategory(cp) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CharKind.Letter,
            UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark => CharKind.Mark,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => CharKind.Number,
            UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
                or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
                or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation => CharKind.Punctuation,
            UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol
                or UnicodeCategory.OtherSymbol => CharKind.Symbol,
            _ => CharKind.None,
        };
        if (IsWhiteSpace(cp)) kind |= CharKind.Space;
        return kind;
    }

    // Oniguruma's \s in UTF-8 mode is the White_Space property (not .NET's char.IsWhiteSpace, not JavaScript's \s,
    // which adds U+FEFF and drops U+0085).
    private static bool IsWhiteSpace(int cp) =>
        cp is (>= 0x09 and <= 0x0D) or 0x20 or 0x85 or 0xA0 or 0x1680 or (>= 0x2000 and <= 0x200A)
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;
}
