using System.Text.Json;
using Cluster.Gateway.Generation;
using Cluster.Tokenizer;

namespace Cluster.Gateway.OpenAi;

/// <summary>A validated OpenAI request: what to generate, and how the answer is delivered.</summary>
public sealed record ApiRequest(GenerationRequest Generation, bool Stream, bool IncludeUsage)
{
    /// <summary>POST /v1/chat/completions.</summary>
    public static ApiRequest ParseChat(JsonElement body, ServedModel model)
    {
        var f = new RequestFields(body);
        CheckModel(f, model);
        if (f.Get("messages") is not { } messagesJson) throw GatewayException.Invalid("messages", "'messages' is required");
        List<ChatMessage> messages;
        try { messages = ChatMessage.ParseList(messagesJson); }
        catch (InvalidDataException e) { throw GatewayException.Invalid("messages", e.Message); }
        if (f.Get("tools") is { ValueKind: JsonValueKind.Array } tools && tools.GetArrayLength() > 0)
            throw GatewayException.Invalid("tools", "'tools' is not supported");
        if (f.Get("response_format") is { } format
            && !(format.ValueKind == JsonValueKind.Object && format.TryGetProperty("type", out JsonElement type) && type.ValueKind == JsonValueKind.String && type.GetString() == "text"))
            throw GatewayException.Invalid("response_format", "only 'response_format' {\"type\": \"text\"} is supported");

        bool logprobs = f.Bool("logprobs") ?? false;
        int? topLogprobs = (int?)f.Integer("top_logprobs", 0, 20);
        if (topLogprobs > 0 && !logprobs) throw GatewayException.Invalid("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
        long? maxCompletion = f.Integer("max_completion_tokens", 1, int.MaxValue);
        int? maxTokens = (int?)(maxCompletion ?? f.Integer("max_tokens", 1, int.MaxValue));
        var builder = new PromptBuilder(model);
        var prompt = builder.FromMessages(messages, "messages");
        GenerationRequest generation = Sampling(f, model) with
        {
            PromptIds = prompt.Ids,
            MaxTokens = builder.MaxTokens(prompt.Ids.Length, maxTokens, "messages"),
            Logprobs = logprobs,
            TopLogprobs = topLogprobs ?? 0,
            SplitReasoning = true,
            StartsInReasoning = prompt.StartsInReasoning,
        };
        var (stream, usage) = Streaming(f);
        return new ApiRequest(generation, stream, usage);
    }

    /// <summary>POST /v1/completions: the prompt is a string or an array of token ids.</summary>
    public static ApiRequest ParseCompletion(JsonElement body, ServedModel model)
    {
        var f = new RequestFields(body);
        CheckModel(f, model);
        var builder = new PromptBuilder(model);
        int[] ids = f.Get("prompt") switch
        {
            null => throw GatewayException.Invalid("prompt", "'prompt' is required"),
            { ValueKind: JsonValueKind.String } s => builder.FromText(s.GetString()!, "prompt"),
            { ValueKind: JsonValueKind.Array } a => builder.FromIds(TokenIds(a), "prompt"),
            { } other => throw RequestFields.Wrong("prompt", "a string or an array of token ids", other),
        };
        if (f.Bool("echo") == true) throw GatewayException.Invalid("echo", "'echo' is not supported (only false)");
        if (f.Has("suffix")) throw GatewayException.Invalid("suffix", "'suffix' is not supported");
        if (f.Integer("best_of", 1, int.MaxValue) is long bestOf && bestOf != 1)
            throw GatewayException.Invalid("best_of", "'best_of' is not supported (only 1)");
        int? logprobs = (int?)f.Integer("logprobs", 0, 20);
        // The legacy API's default completion length.
        int maxTokens = (int)(f.Integer("max_tokens", 1, int.MaxValue) ?? 16);
        GenerationRequest generation = Sampling(f, model) with
        {
            PromptIds = ids,
            MaxTokens = builder.MaxTokens(ids.Length, maxTokens, "prompt"),
            Logprobs = logprobs is not null,
            TopLogprobs = logprobs ?? 0,
        };
        var (stream, usage) = Streaming(f);
        return new ApiRequest(generation, stream, usage);
    }

    private static void CheckModel(RequestFields f, ServedModel model)
    {
        string name = f.String("model") ?? throw GatewayException.Invalid("model", "'model' is required");
        if (name != model.Id)
            throw new GatewayException(GatewayErrorKind.ModelNotFound, $"The model '{name}' does not exist (this server serves '{model.Id}')", "model", "model_not_found");
    }

    /// <summary>The sampling fields both endpoints share; prompt and length are filled in by the caller.</summary>
    private static GenerationRequest Sampling(RequestFields f, ServedModel model)
    {
        if (f.Integer("n", 1, int.MaxValue) is long n && n != 1) throw GatewayException.Invalid("n", $"only n = 1 is supported (got {n})");
        f.OnlyDefault("presence_penalty", 0);
        f.OnlyDefault("frequency_penalty", 0);
        if (f.Get("top_p") is not null && f.Number("top_p", 0, 1) is 0.0)
            throw GatewayException.Invalid("top_p", "'top_p' must be greater than 0 and at most 1 (got 0)");
        return new GenerationRequest
        {
            PromptIds = [],
            MaxTokens = 0,
            // OpenAI's default temperature is 1.
            Temperature = (float)(f.Number("temperature", 0, 2) ?? 1),
            TopP = (float)(f.Number("top_p", 0, 1) ?? 1),
            TopK = (int)(f.Integer("top_k", -1, model.VocabSize) is long k && k > 0 ? k : 0),
            Seed = f.Integer("seed", long.MinValue, long.MaxValue) is long seed ? unchecked((ulong)seed) : null,
            Stops = f.Stops("stop"),
        };
    }

    private static (bool Stream, bool IncludeUsage) Streaming(RequestFields f)
    {
        bool stream = f.Bool("stream") ?? false;
        if (f.Get("stream_options") is not { } options) return (stream, false);
        if (!stream) throw GatewayException.Invalid("stream_options", "'stream_options' is only allowed when 'stream' is true");
        if (options.ValueKind != JsonValueKind.Object) throw RequestFields.Wrong("stream_options", "an object", options);
        bool usage = false;
        if (options.TryGetProperty("include_usage", out JsonElement u) && u.ValueKind != JsonValueKind.Null)
            usage = u.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw RequestFields.Wrong("stream_options.include_usage", "a boolean", u),
            };
        return (stream, usage);
    }

    private static List<long> TokenIds(JsonElement array)
    {
        var ids = new List<long>(array.GetArrayLength());
        int i = 0;
        foreach (JsonElement e in array.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long id))
                throw GatewayException.Invalid("prompt", $"prompt[{i}] must be a token id (an integer); arrays of strings are not supported");
            ids.Add(id);
            i++;
        }
        return ids;
    }
}
