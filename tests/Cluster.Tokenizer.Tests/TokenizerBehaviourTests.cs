using System.Text;

namespace Cluster.Tokenizer.Tests;

public class TokenizerBehaviourTests
{
    private static Tokenizer Tok => TestData.Tokenizer;

    [Fact]
    public void EmptyTextGivesNoIds()
    {
        Assert.Empty(Tok.Encode(""));
        Assert.Equal([Tok.BosId!.Value], Tok.Encode("", addSpecialTokens: true));
        Assert.Equal("", Tok.Decode([]));
    }

    [Fact]
    public void VocabularyAndSpecialIdsComeFromTheFiles()
    {
        Assert.Equal(128815, Tok.VocabSize);
        Assert.Equal(0, Tok.BosId);
        Assert.Equal(1, Tok.EosId);
        Assert.Equal("<｜begin▁of▁sentence｜>", Tok.IdToToken(0));
        Assert.Equal(128803, Tok.TokenToId("<｜User｜>"));
        Assert.Null(Tok.TokenToId("no such token"));
        Assert.Equal("Ġthe", Tok.IdToToken(Tok.Encode(" the").Single()));
        Assert.True(Tok.IsSpecial(0));
        Assert.False(Tok.IsSpecial(128803)); // <｜User｜> is an added token but not a special one
    }

    [Fact]
    public void AddSpecialTokensPrependsBosAsTokenizerConfigAsks()
    {
        int[] plain = Tok.Encode("Hello world");
        Assert.Equal([0, .. plain], Tok.Encode("Hello world", addSpecialTokens: true));
    }

    [Fact]
    public void SpecialTokenTextIsMatchedBeforePreTokenization()
    {
        Assert.Equal([0, 33310, 1], Tok.Encode("<｜begin▁of▁sentence｜>hello<｜end▁of▁sentence｜>"));
        Assert.Equal("hello", Tok.Decode([0, 33310, 1], skipSpecialTokens: true));
        Assert.Equal("<｜User｜>hello", Tok.Decode([128803, 33310], skipSpecialTokens: true));
    }

    [Fact]
    public void InvalidUtf8BecomesReplacementCharactersLikePythonErrorsReplace()
    {
        // \xC3 alone, then \xE2\x82 (a truncated 3-byte sequence) are each one maximal invalid subsequence.
        byte[] bytes = [(byte)'a', 0xC3, (byte)'b', 0xE2, 0x82, (byte)'c', 0xFF];
        Assert.Equal(Tok.Encode("a\uFFFDb\uFFFDc\uFFFD"), Tok.EncodeUtf8(bytes));
    }

    [Fact]
    public void LoneSurrogatesEncodeAsReplacementCharacter()
    {
        Assert.Equal(Tok.Encode("x\uFFFDy"), Tok.Encode("x\uD800y"));
    }

    [Fact]
    public void IdsOutsideTheVocabularyGiveAClearError()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Tok.Decode([5, 128815]));
        Assert.Equal("token id 128815 is not in the vocabulary (ids 0..128814)", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok.Decode([-1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok.IdToToken(200000));
    }

    [Fact]
    public void DecodeOfPartialCharacterGivesReplacementCharacter()
    {
        int[] ids = Tok.Encode("😀");
        Assert.True(ids.Length > 1, "the emoji should need more than one token for this test");
        Assert.Contains('\uFFFD', Tok.Decode(ids[..1]));
    }

    [Fact]
    public void LongRepetitiveWordsEncodeCorrectly()
    {
        // Long pre-tokens bypass the cache and stress the merge heap; the reference matters most here.
        string text = new string('a', 3000) + " " + string.Concat(Enumerable.Repeat("ab", 1500)) + new string(' ', 2000) + "x";
        Assert.Equal(text, Tok.Decode(Tok.Encode(text)));
        Assert.Equal(Tok.Encode(text), Tok.Encode(text)); // cached and uncached paths agree
    }

    [Fact]
    public void ConcurrentEncodesAgree()
    {
        string[] texts = TestData.Fuzz(seed: 3, count: 64, maxLength: 400, bmpOnly: false);
        int[][] expected = texts.Select(t => Tok.Encode(t)).ToArray();
        Parallel.For(0, texts.Length * 4, i => Assert.Equal(expected[i % texts.Length], Tok.Encode(texts[i % texts.Length])));
    }

    [Fact]
    public void Utf8AndStringEncodingAgree()
    {
        foreach (string text in TestData.Fuzz(seed: 5, count: 50, maxLength: 100, bmpOnly: false))
            Assert.Equal(Tok.Encode(text), Tok.EncodeUtf8(Encoding.UTF8.GetBytes(text)));
    }
}
