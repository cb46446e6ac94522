namespace Cluster.Tokenizer.Tests;

/// <summary>Conversations whose rendered prompt is compared with the Jinja template run by @lenml/tokenizers.</summary>
public static class ChatCases
{
    public sealed record Case(string Name, string MessagesJson, bool AddGenerationPrompt);

    private const string Weather = """{"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}""";
    private const string Time = """{"type": "function", "function": {"name": "get_time", "arguments": "{\"tz\": \"CET\"}"}}""";

    public static readonly Case[] All =
    [
        new("user only", """[{"role": "user", "content": "Hello!"}]""", true),
        new("user only, no generation prompt", """[{"role": "user", "content": "Hello!"}]""", false),
        new("empty conversation", "[]", true),
        new("system and user", """[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]""", true),
        new("two system messages", """[{"role": "system", "content": "A"}, {"role": "user", "content": "q"}, {"role": "system", "content": "B"}]""", true),
        new("multi-turn", """[{"role": "system", "content": "Be kind."}, {"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}, {"role": "user", "content": "and 2+2?"}]""", true),
        new("ends with assistant", """[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"}]""", false),
        new("unicode and newlines", """[{"role": "user", "content": "你好\n\n  世界 😀 <think>x</think>"}, {"role": "assistant", "content": "\nŒuf"}]""", true),
        new("tool call and result", $$"""[{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{{Weather}}]}, {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 21}"}]""", true),
        new("tool result then answer", $$"""[{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": null, "tool_calls": [{{Weather}}]}, {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "It is sunny."}, {"role": "user", "content": "Thanks"}]""", true),
        new("two tool calls, consecutive tool messages", $$"""[{"role": "system", "content": "S"}, {"role": "user", "content": "Weather and time?"}, {"role": "assistant", "content": null, "tool_calls": [{{Weather}}, {{Time}}]}, {"role": "tool", "content": "sunny"}, {"role": "tool", "content": "10:00"}]""", true),
        new("tool calls in two turns", $$"""[{"role": "user", "content": "a"}, {"role": "assistant", "content": null, "tool_calls": [{{Weather}}]}, {"role": "tool", "content": "r1"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": null, "tool_calls": [{{Time}}]}, {"role": "tool", "content": "r2"}]""", false),
        new("tool result without generation prompt", $$"""[{"role": "user", "content": "x"}, {"role": "assistant", "content": null, "tool_calls": [{{Time}}]}, {"role": "tool", "content": "t"}]""", false),
        new("special token text in content", """[{"role": "user", "content": "<｜User｜>literal<｜end▁of▁sentence｜>"}]""", true),
    ];
}
