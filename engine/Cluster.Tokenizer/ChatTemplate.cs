using System.Security.Cryptography;
using System.Text;

namespace Cluster.Tokenizer;

/// <summary>
/// DeepSeek-V3's chat template (tokenizer_config.json's chat_template), rendered in C# with the Jinja template's exact
/// semantics, quirks included: tool calls after the very first one in a conversation each close the call list, and
/// no generation prompt follows tool results (the model continues after &lt;｜tool▁outputs▁end｜&gt;).
/// A different template is refused rather than rendered wrongly.
/// </summary>
public sealed class ChatTemplate
{
    // SHA-256 of the template text this class implements (DeepSeek-V3's tokenizer_config.json).
    private const string DeepSeekV3TemplateSha256 = "3b8267e54b67df6500f231ffa969955cc9d26b3444a291ced4eb96ca7d3ca1ea";

    private const string User = "<｜User｜>", Assistant = "<｜Assistant｜>", EndOfSentence = "<｜end▁of▁sentence｜>";
    private const string CallsBegin = "<｜tool▁calls▁begin｜>", CallsEnd = "<｜tool▁calls▁end｜>";
    private const string CallBegin = "<｜tool▁call▁begin｜>", CallEnd = "<｜tool▁call▁end｜>", Sep = "<｜tool▁sep｜>";
    private const string OutputsBegin = "<｜tool▁outputs▁begin｜>", OutputsEnd = "<｜tool▁outputs▁end｜>";
    private const string OutputBegin = "<｜tool▁output▁begin｜>", OutputEnd = "<｜tool▁output▁end｜>";

    private readonly string _bosToken;

    public ChatTemplate(string template, string bosToken)
    {
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(template)));
        if (hash != DeepSeekV3TemplateSha256)
            throw new NotSupportedException("chat_template is not DeepSeek-V3's; only that template is implemented");
        _bosToken = bosToken;
    }

    /// <summary>The template of a tokenizer's tokenizer_config.json.</summary>
    public static ChatTemplate For(Tokenizer tokenizer)
    {
        string template = tokenizer.ChatTemplateSource ?? throw new NotSupportedException("tokenizer_config.json has no chat_template");
        return new ChatTemplate(template, tokenizer.BosToken ?? throw new NotSupportedException("tokenizer_config.json has no bos_token"));
    }

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var sb = new StringBuilder(_bosToken);
        bool firstSystem = true;
        for (int i = 0; i < messages.Count; i++)
        {
            ChatMessage m = messages[i];
            if (m.Role is not ("system" or "user" or "assistant" or "tool"))
                throw new ArgumentException($"messages[{i}]: role '{m.Role}' is not one of system, user, assistant, tool");
            if (m.Role != "system") continue;
            if (!firstSystem) sb.Append("\n\n");
            sb.Append(Required(m, i));
            firstSystem = false;
        }

        bool anyToolCall = false, inToolOutputs = false, firstOutput = true;
        for (int i = 0; i < messages.Count; i++)
        {
            ChatMessage m = messages[i];
            switch (m.Role)
            {
                case "user":
                    inToolOutputs = false;
                    sb.Append(User).Append(Required(m, i));
                    break;
                case "assistant" when m.Content is null:
                    inToolOutputs = false;
                    if (m.ToolCalls is null || m.ToolCalls.Count == 0)
                        throw new ArgumentException($"messages[{i}]: an assistant message needs content or tool_calls");
                    foreach (ToolCall call in m.ToolCalls)
                    {
                        sb.Append(anyToolCall ? "\n" + CallBegin : Assistant + CallsBegin + CallBegin);
                        sb.Append(call.Type).Append(Sep).Append(call.Name).Append("\n```json\n").Append(call.Arguments).Append("\n```").Append(CallEnd);
                        if (anyToolCall) sb.Append(CallsEnd).Append(EndOfSentence);
                        anyToolCall = true;
                    }
                    break;
                case "assistant":
                    sb.Append(inToolOutputs ? OutputsEnd : Assistant).Append(m.Content).Append(EndOfSentence);
                    inToolOutputs = false;
                    break;
                case "tool":
                    inToolOutputs = true;
                    sb.Append(firstOutput ? OutputsBegin + OutputBegin : "\n" + OutputBegin).Append(Required(m, i)).Append(OutputEnd);
                    firstOutput = false;
                    break;
            }
        }
        if (inToolOutputs) sb.Append(OutputsEnd);
        else if (addGenerationPrompt) sb.Append(Assistant);
        return sb.ToString();
    }

    private static string Required(ChatMessage m, int i)
        => m.Content ?? throw new ArgumentException($"messages[{i}]: a {m.Role} message needs content");
}
