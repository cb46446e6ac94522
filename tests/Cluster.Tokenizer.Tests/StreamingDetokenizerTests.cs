using System.Text;

namespace Cluster.Tokenizer.Tests;

public class StreamingDetokenizerTests
{
    private static Tokenizer Tok => TestData.Tokenizer;

    [Fact]
    public void MultiByteCharactersSplitAcrossTokensComeOutWhole()
    {
        string text = "𒀀𒀁 café 😀👨‍👩‍👧 深度求索 𝄞";
        int[] ids = Tok.Encode(text);
        var detok = new StreamingDetokenizer(Tok);
        var pieces = new List<string>();
        foreach (int id in ids) pieces.Add(detok.Push(id));
        pieces.Add(detok.Flush());
        Assert.Equal(text, string.Concat(pieces));
        Assert.Contains(pieces, p => p.Length == 0); // some token ended inside a character and was held back
        foreach (string p in pieces)
        {
            Assert.DoesNotContain('\uFFFD', p);
            Assert.True(Encoding.UTF8.GetByteCount(p) == Encoding.UTF8.GetBytes(p).Length && !HasLoneSurrogate(p), "half a character emitted");
        }
    }

    [Fact]
    public void ConcatenationEqualsDecodeForAnyIds()
    {
        var random = new Random(42);
        for (int round = 0; round < 200; round++)
        {
            // Random ids include lone byte tokens, so invalid and truncated UTF-8 is exercised too.
            int[] ids = Enumerable.Range(0, random.Next(1, 30)).Select(_ => random.Next(4) == 0 ? random.Next(128815) : random.Next(300)).ToArray();
            foreach (bool skip in new[] { false, true })
            {
                var detok = new StreamingDetokenizer(Tok, skip);
                var sb = new StringBuilder();
                foreach (int id in ids) sb.Append(detok.Push(id));
                sb.Append(detok.Flush());
                Assert.Equal(Tok.Decode(ids, skip), sb.ToString());
            }
        }
    }

    [Fact]
    public void SpecialTokensShownOrHidden()
    {
        int[] ids = [0, .. Tok.Encode("Hi"), 1];
        Assert.Equal("<｜begin▁of▁sentence｜>Hi<｜end▁of▁sentence｜>", Stream(new StreamingDetokenizer(Tok), ids));
        Assert.Equal("Hi", Stream(new StreamingDetokenizer(Tok, skipSpecialTokens: true), ids));
    }

    [Fact]
    public void UnknownIdGivesClearError()
        => Assert.Throws<ArgumentOutOfRangeException>(() => new StreamingDetokenizer(Tok).Push(999_999));

    private static string Stream(StreamingDetokenizer d, int[] ids) => string.Concat(ids.Select(d.Push)) + d.Flush();

    private static bool HasLoneSurrogate(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            if (char.IsSurrogate(s[i])) return true;
        }
        return false;
    }
}
