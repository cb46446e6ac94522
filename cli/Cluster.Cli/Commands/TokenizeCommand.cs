using System.Text.Json;
using Cluster.Tokenizer;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster tokenize</c>: UTF-8 text (or a chat, rendered with the model's template) on stdin, token ids out as JSON.</summary>
public static class TokenizeCommand
{
    public const string Usage = "tokenize --model DIR [--chat] [--add-special-tokens]   (text or {\"messages\":[...]} on stdin; prints a JSON array of ids)";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string dir = args.Required("model");
        bool chat = args.Flag("chat");
        bool addSpecial = args.Flag("add-special-tokens");
        args.RejectUnknown();
        if (chat && addSpecial) throw new CliException("--add-special-tokens does not apply to --chat (the template writes BOS itself)");

        byte[] input = await ReadStdin(cancel);
        var tokenizer = Cluster.Tokenizer.Tokenizer.FromDirectory(dir);
        int[] ids = chat ? tokenizer.Encode(RenderChat(tokenizer, input)) : tokenizer.EncodeUtf8(input, addSpecial);
        Console.Out.WriteLine(JsonSerializer.Serialize(ids));
        return 0;
    }

    /// <summary>The prompt of <c>{"messages": [...], "add_generation_prompt": true}</c> (the flag defaults to true).</summary>
    private static string RenderChat(Cluster.Tokenizer.Tokenizer tokenizer, byte[] input)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(input);
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("messages", out JsonElement messages))
                throw new CliException("stdin: expected {\"messages\": [...]}");
            bool generationPrompt = !root.TryGetProperty("add_generation_prompt", out JsonElement g) || g.ValueKind != JsonValueKind.False;
            return ChatTemplate.For(tokenizer).Render(ChatMessage.ParseList(messages), generationPrompt);
        }
        catch (JsonException e) { throw new CliException($"stdin: not valid JSON ({e.Message})"); }
        catch (InvalidDataException e) { throw new CliException("stdin: " + e.Message); }
        catch (ArgumentException e) { throw new CliException("stdin: " + e.Message); }
    }

    internal static async Task<byte[]> ReadStdin(CancellationToken cancel)
    {
        using var buffer = new MemoryStream();
        await using Stream stdin = Console.OpenStandardInput();
        await stdin.CopyToAsync(buffer, cancel);
        return buffer.ToArray();
    }
}
