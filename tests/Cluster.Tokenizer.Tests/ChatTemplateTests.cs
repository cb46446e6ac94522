using System.Text.Json;

namespace Cluster.Tokenizer.Tests;

public class ChatTemplateTests
{
    private static readonly ChatTemplate Template = ChatTemplate.For(TestData.Tokenizer);

    private static List<ChatMessage> Parse(string json)
    {
        using JsonDocument doc = JsonDocument.Parse(json);
        return ChatMessage.ParseList(doc.RootElement);
    }

    [Fact]
    public void RenderEqualsJinjaTemplateByteForByte()
    {
        string[] expected = HfReference.Get.Chats;
        for (int i = 0; i < ChatCases.All.Length; i++)
        {
            ChatCases.Case c = ChatCases.All[i];
            string actual = Template.Render(Parse(c.MessagesJson), c.AddGenerationPrompt);
            Assert.True(expected[i] == actual, $"{c.Name}:\n  jinja: {JsonSerializer.Serialize(expected[i])}\n  ours:  {JsonSerializer.Serialize(actual)}");
        }
    }

    [Fact]
    public void RenderedPromptTokenizesWithItsControlTokens()
    {
        string prompt = Template.Render([new ChatMessage("system", "S"), new ChatMessage("user", "Hi")]);
        int[] ids = TestData.Tokenizer.Encode(prompt);
        Assert.Equal(0, ids[0]);
        Assert.Equal(128803, ids[2]);
        Assert.Equal(128804, ids[^1]);
    }

    [Fact]
    public void ContentPartsAndObjectArgumentsAreAccepted()
    {
        var messages = Parse("""
            [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
             {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}]
            """);
        Assert.Equal("a\nb", messages[0].Content);
        Assert.Equal("""{"x": 1}""", messages[1].ToolCalls![0].Arguments);
    }

    [Fact]
    public void BadMessagesGiveClearErrors()
    {
        Assert.Equal("messages[1]: role 'robot' is not one of system, user, assistant, tool",
            Assert.Throws<ArgumentException>(() => Template.Render([new ChatMessage("user", "x"), new ChatMessage("robot", "y")])).Message);
        Assert.Equal("messages[0]: an assistant message needs content or tool_calls",
            Assert.Throws<ArgumentException>(() => Template.Render([new ChatMessage("assistant", null)])).Message);
        Assert.Equal("messages[0]: a user message needs content",
            Assert.Throws<ArgumentException>(() => Template.Render([new ChatMessage("user", null)])).Message);
        Assert.Equal("messages[0] has no 'role'", Assert.Throws<InvalidDataException>(() => Parse("""[{"content": "x"}]""")).Message);
        Assert.Equal("messages[0].tool_calls[0] has no 'function' object",
            Assert.Throws<InvalidDataException>(() => Parse("""[{"role": "assistant", "tool_calls": [{"type": "function"}]}]""")).Message);
    }

    [Fact]
    public void OtherTemplatesAreRefused()
    {
        var e = Assert.Throws<NotSupportedException>(() => new ChatTemplate("{{ messages }}", "<s>"));
        Assert.Contains("DeepSeek-V3", e.Message);
    }
}
