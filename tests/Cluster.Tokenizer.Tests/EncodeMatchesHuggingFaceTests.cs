using System.Text;

namespace Cluster.Tokenizer.Tests;

/// <summary>Ids and decoded text equal to those of @lenml/tokenizers on the corpus and on fuzzed text.</summary>
public class EncodeMatchesHuggingFaceTests
{
    private static Tokenizer Tok => TestData.Tokenizer;

    public static TheoryData<string> CorpusNames => new(TestData.Corpus.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(CorpusNames))]
    public void CorpusIdsEqualReference(string name)
    {
        byte[] bytes = TestData.Corpus.Single(c => c.Name == name).Bytes;
        int[] expected = HfReference.Get.CorpusIds[name];
        int[] actual = Tok.EncodeUtf8(bytes);
        Assert.True(expected.Length > 10, "reference gave too few ids for " + name);
        AssertSameIds(expected, actual, Encoding.UTF8.GetString(bytes));
    }

    [Fact]
    public void FuzzedTextIdsEqualReference()
    {
        int[][] expected = HfReference.Get.FuzzIds;
        for (int i = 0; i < HfReference.FuzzTexts.Length; i++)
            AssertSameIds(expected[i], Tok.Encode(HfReference.FuzzTexts[i]), HfReference.FuzzTexts[i]);
    }

    [Fact]
    public void DecodeEqualsReference()
    {
        HfReference.Answers answers = HfReference.Get;
        for (int i = 0; i < HfReference.DecodeCases.Length; i++)
        {
            Assert.Equal(answers.Decoded[i], Tok.Decode(HfReference.DecodeCases[i]));
            Assert.Equal(answers.DecodedSkipSpecial[i], Tok.Decode(HfReference.DecodeCases[i], skipSpecialTokens: true));
        }
    }

    [Fact]
    public void DecodeOfEncodeIsIdentityForValidText()
    {
        foreach ((string name, byte[] bytes) in TestData.Corpus)
        {
            if (name.EndsWith(".bin", StringComparison.Ordinal)) continue;
            string text = Encoding.UTF8.GetString(bytes);
            Assert.Equal(text, Tok.Decode(Tok.Encode(text)));
        }
        foreach (string text in TestData.Fuzz(seed: 11, count: 300, maxLength: 200, bmpOnly: false))
            Assert.Equal(text, Tok.Decode(Tok.Encode(text)));
    }

    private static void AssertSameIds(int[] expected, int[] actual, string text)
    {
        if (expected.AsSpan().SequenceEqual(actual)) return;
        int at = 0;
        while (at < Math.Min(expected.Length, actual.Length) && expected[at] == actual[at]) at++;
        string Window(int[] ids) => string.Join(" ", ids.Skip(Math.Max(0, at - 2)).Take(6).Select(id => $"{id}:{Tok.Decode([id])}"));
        Assert.Fail($"ids differ at {at} for text {Escape(text)}\n  reference: {Window(expected)}\n  ours:      {Window(actual)}");
    }

    private static string Escape(string s) => System.Text.Json.JsonSerializer.Serialize(s.Length > 300 ? s[..300] : s);
}
