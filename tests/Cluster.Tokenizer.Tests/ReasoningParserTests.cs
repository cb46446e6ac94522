namespace Cluster.Tokenizer.Tests;

public class ReasoningParserTests
{
    [Theory]
    [InlineData("<think>\nplan\n</think>\n\nAnswer.", false, "\nplan\n", "\n\nAnswer.")]
    [InlineData("Just an answer.", false, "", "Just an answer.")]
    [InlineData("Literal </think> in an answer", false, "", "Literal </think> in an answer")]
    [InlineData("<think>still thinking", false, "still thinking", "")]
    [InlineData("prefilled reasoning</think>answer", true, "prefilled reasoning", "answer")]
    [InlineData("<think>a</think>b</think>c", false, "a", "b</think>c")]
    [InlineData("<thin", false, "", "<thin")]
    [InlineData(" <think>x</think>", false, "", " <think>x</think>")]
    [InlineData("", false, "", "")]
    public void SplitsWholeText(string text, bool startsInReasoning, string reasoning, string answer)
        => Assert.Equal(new ReasoningSplit(reasoning, answer), ReasoningParser.Split(text, startsInReasoning));

    [Fact]
    public void StreamingGivesTheWholeTextSplitForEveryChunking()
    {
        string[] texts = ["<think>\nplan <b>bold</b> </thin k</think>\n\nAnswer </think>.", "<think>x</think", "plain <think>", "</think>after", "<<think>"];
        var random = new Random(9);
        foreach (string text in texts)
            foreach (bool prefilled in new[] { false, true })
            {
                ReasoningSplit whole = ReasoningParser.Split(text, prefilled);
                for (int trial = 0; trial < 200; trial++)
                {
                    var parser = new ReasoningParser(prefilled);
                    string reasoning = "", answer = "";
                    for (int pos = 0; pos < text.Length;)
                    {
                        int n = Math.Min(text.Length - pos, random.Next(1, 5));
                        ReasoningSplit part = parser.Push(text.Substring(pos, n));
                        // Answer text never appears before the reasoning is over.
                        Assert.False(part.Answer.Length > 0 && whole.Reasoning.Length > reasoning.Length + part.Reasoning.Length);
                        (reasoning, answer) = (reasoning + part.Reasoning, answer + part.Answer);
                        pos += n;
                    }
                    ReasoningSplit rest = parser.Flush();
                    Assert.Equal(whole, new ReasoningSplit(reasoning + rest.Reasoning, answer + rest.Answer));
                }
            }
    }

    [Fact]
    public void HoldsBackOnlyWhatCouldBeATag()
    {
        var parser = new ReasoningParser();
        Assert.Equal(new ReasoningSplit("", ""), parser.Push("<thi"));
        Assert.Equal(new ReasoningSplit("abc", ""), parser.Push("nk>abc</"));
        Assert.Equal(new ReasoningSplit("", "done"), parser.Push("think>done"));
    }
}
