using System.Text.RegularExpressions;

namespace Cluster.Tokenizer.Tests;

/// <summary>
/// The hand-written matchers against .NET's backtracking Regex on the same patterns. On BMP text the two engines
/// agree with Oniguruma (same classes, same alternation order); outside the BMP .NET sees surrogates, which is why
/// the matchers exist, and the reference comparison covers that.
/// </summary>
public class SplitPatternTests
{
    public static TheoryData<string> Patterns => new(SplitPattern.DigitRunsPattern, SplitPattern.CjkRunsPattern, SplitPattern.WordsPattern);

    [Theory]
    [MemberData(nameof(Patterns))]
    public void MatchesEqualDotNetRegexOnBmpText(string pattern)
    {
        var regex = new Regex(pattern, RegexOptions.CultureInvariant);
        SplitPattern matcher = SplitPattern.For(pattern)!;
        string[] texts = [.. TestData.Fuzz(seed: 1, count: 3000, maxLength: 80, bmpOnly: true),
            "  hello\n\n  world  ", "a \n b", "x\r\n\r\n  \ty", " ! ?? 's 'S  .Net", "\u0301\u0301a \u0301", "\t\t\n", "   ", "a  "];
        foreach (string text in texts)
        {
            var expected = regex.Matches(text).Select(m => (m.Index, m.Index + m.Length)).ToList();
            var actual = new List<(int, int)>();
            for (int pos = 0; matcher.Find(text, pos, out int start, out int end); pos = end) actual.Add((start, end));
            Assert.True(expected.SequenceEqual(actual), $"pattern {pattern} on {System.Text.Json.JsonSerializer.Serialize(text)}: regex {string.Join(",", expected)} vs {string.Join(",", actual)}");
        }
    }

    [Fact]
    public void SupplementaryLettersAndDigitsAreClassifiedByCodePoint()
    {
        SplitPattern words = SplitPattern.For(SplitPattern.WordsPattern)!;
        Assert.True(words.Find(" 𝐀𝐁𠀀x", 0, out int start, out int end));
        Assert.Equal((0, 8), (start, end)); // one space + three supplementary letters (two chars each) + x
        SplitPattern digits = SplitPattern.For(SplitPattern.DigitRunsPattern)!;
        Assert.True(digits.Find("a𝟎𝟏𝟐𝟑", 0, out start, out end));
        Assert.Equal((1, 7), (start, end)); // three mathematical digits at most
    }

    [Fact]
    public void UnknownPatternsHaveNoMatcher() => Assert.Null(SplitPattern.For(@"\w+"));
}
