using System.Text.Json;

namespace Cluster.Tokenizer;

/// <summary>A function call an assistant message made; <see cref="Arguments"/> is the JSON text of its arguments.</summary>
public sealed record ToolCall(string Name, string Arguments, string Type = "function", string? Id = null);

/// <summary>One message of an OpenAI-style chat: role system, user, assistant or tool.</summary>
public sealed record ChatMessage(string Role, string? Content, IReadOnlyList<ToolCall>? ToolCalls = null, string? ToolCallId = null, string? Name = null)
{
    /// <summary>
    /// Reads an OpenAI <c>messages</c> array. Content is a string, null, or an array of text parts (joined with
    /// newlines, as vLLM does); tool-call arguments are a JSON string or an object (kept as its JSON text).
    /// </summary>
    public static List<ChatMessage> ParseList(JsonElement messages)
    {
        if (messages.ValueKind != JsonValueKind.Array) throw new InvalidDataException("'messages' must be an array");
        var list = new List<ChatMessage>();
        int i = 0;
        foreach (JsonElement m in messages.EnumerateArray())
        {
            string where = $"messages[{i++}]";
            if (m.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{where} must be an object");
            string role = String(m, "role", where) ?? throw new InvalidDataException($"{where} has no 'role'");
            list.Add(new ChatMessage(role, ReadContent(m, where), ReadToolCalls(m, where), String(m, "tool_call_id", where), String(m, "name", where)));
        }
        return list;
    }

    private static string? ReadContent(JsonElement m, string where)
    {
        if (!m.TryGetProperty("content", out JsonElement c) || c.ValueKind == JsonValueKind.Null) return null;
        if (c.ValueKind == JsonValueKind.String) return c.GetString();
        if (c.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{where}.content must be a string, null or an array of text parts");
        var parts = new List<string>();
        foreach (JsonElement part in c.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || String(part, "type", where) != "text" || String(part, "text", where) is not string text)
                throw new InvalidDataException($"{where}.content has a part that is not {{\"type\": \"text\", \"text\": ...}}");
            parts.Add(text);
        }
        return string.Join('\n', parts);
    }

    private static List<ToolCall>? ReadToolCalls(JsonElement m, string where)
    {
        if (!m.TryGetProperty("tool_calls", out JsonElement calls) || calls.ValueKind == JsonValueKind.Null) return null;
        if (calls.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{where}.tool_calls must be an array");
        var list = new List<ToolCall>();
        int i = 0;
        foreach (JsonElement call in calls.EnumerateArray())
        {
            string at = $"{where}.tool_calls[{i++}]";
            if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("function", out JsonElement f) || f.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{at} has no 'function' object");
            string name = String(f, "name", at) ?? throw new InvalidDataException($"{at}.function has no 'name'");
            string arguments = f.TryGetProperty("arguments", out JsonElement a) switch
            {
                false => throw new InvalidDataException($"{at}.function has no 'arguments'"),
                true when a.ValueKind == JsonValueKind.String => a.GetString()!,
                true when a.ValueKind == JsonValueKind.Object => a.GetRawText(),
                _ => throw new InvalidDataException($"{at}.function.arguments must be a JSON string or an object"),
            };
            list.Add(new ToolCall(name, arguments, String(call, "type", at) ?? "function", String(call, "id", at)));
        }
        return list;
    }

    private static string? String(JsonElement e, string name, string where)
    {
        if (!e.TryGetProperty(name, out JsonElement v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new InvalidDataException($"{where}.{name} must be a string");
    }
}
