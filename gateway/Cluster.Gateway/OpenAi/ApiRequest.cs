using System.Text.Json;
using Cluster.Gateway.Generation;
using Cluster.Protos.V1;
using ChatMessage = Cluster.Tokenizer.ChatMessage;

namespace Cluster.Gateway.OpenAi;

/// <summary>
/// A validated OpenAI request: what to generate, and how the answer is delivered. Types are read here
/// (<see cref="RequestFields"/>), ranges checked by <see cref="SamplingValidation"/> as at the other doors.
/// </summary>
public sealed record ApiRequest(CompletionRequest Completion, bool Stream, bool IncludeUsage)
{
    /// <summary>POST /v1/chat/completions.</summary>
    public static ApiRequest ParseChat(JsonElement body, ServedModel model)
    {
        try { return FromChat(body, model); }
        catch (InvalidFieldException e) { throw GatewayException.Invalid(e.Field, e.Message); }
    }

    /// <summary>POST /v1/completions: the prompt is a string or an array of token ids.</summary>
    public static ApiRequest ParseCompletion(JsonElement body, ServedModel model)
    {
        try { return FromCompletion(body, model); }
        catch (InvalidFieldException e) { throw GatewayException.Invalid(e.Field, e.Message); }
    }

    private static ApiRequest FromChat(JsonElement body, ServedModel model)
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
        int topLogprobs = TopLogprobs(f, "top_logprobs");
        if (topLogprobs > 0 && !logprobs) throw GatewayException.Invalid("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
        int? maxTokens = MaxTokens(f, "max_completion_tokens") ?? MaxTokens(f, "max_tokens");
        var builder = new PromptBuilder(model);
        var prompt = builder.FromMessages(messages, "messages");
        SamplingParams sampling = Sampling(f, model);
        sampling.MaxTokens = (uint)builder.MaxTokens(prompt.Ids.Length, maxTokens, "messages");
        var completion = new CompletionRequest
        {
            PromptIds = prompt.Ids,
            Sampling = sampling,
            Logprobs = logprobs,
            TopLogprobs = topLogprobs,
            SplitReasoning = true,
            StartsInReasoning = prompt.StartsInReasoning,
        };
        var (stream, usage) = Streaming(f);
        return new ApiRequest(completion, stream, usage);
    }

    private static ApiRequest FromCompletion(JsonElement body, ServedModel model)
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
        if (f.Integer("best_of") is long bestOf && bestOf != 1)
            throw GatewayException.Invalid("best_of", "'best_of' is not supported (only 1)");
        // The legacy API's logprobs is the number of alternatives; given at all, the chosen token's is reported.
        bool logprobs = f.Has("logprobs");
        int topLogprobs = TopLogprobs(f, "logprobs");
        // The legacy API's default completion length.
        int maxTokens = MaxTokens(f, "max_tokens") ?? 16;
        SamplingParams sampling = Sampling(f, model);
        sampling.MaxTokens = (uint)builder.MaxTokens(ids.Length, maxTokens, "prompt");
        var completion = new CompletionRequest { PromptIds = ids, Sampling = sampling, Logprobs = logprobs, TopLogprobs = topLogprobs };
        var (stream, usage) = Streaming(f);
        return new ApiRequest(completion, stream, usage);
    }

    private static void CheckModel(RequestFields f, ServedModel model)
    {
        string name = f.String("model") ?? throw GatewayException.Invalid("model", "'model' is required");
        if (name != model.Id)
            throw new GatewayException(GatewayErrorKind.ModelNotFound, $"The model '{name}' does not exist (this server serves '{model.Id}')", "model", "model_not_found");
    }

    /// <summary>The sampling fields both endpoints share, checked; max_tokens is resolved by the caller.</summary>
    private static SamplingParams Sampling(RequestFields f, ServedModel model)
    {
        if (f.Integer("n") is long n && n != 1) throw GatewayException.Invalid("n", $"only n = 1 is supported (got {n})");
        f.OnlyDefault("presence_penalty", 0);
        f.OnlyDefault("frequency_penalty", 0);
        // OpenAI's default temperature is 1. Checked before narrowing to the message's float, which could round into range.
        double temperature = f.Number("temperature") ?? 1;
        SamplingValidation.Temperature(temperature, "temperature");
        var sampling = new SamplingParams { Temperature = (float)temperature };
        if (f.Number("top_p") is double topP)
        {
            SamplingValidation.TopP(topP, "top_p");
            sampling.TopP = (float)topP;
        }
        // vLLM's extension; its -1 means off, as 0 does.
        if (f.Integer("top_k") is long k and not -1)
        {
            SamplingValidation.TopK(k, model.VocabSize, "top_k");
            sampling.TopK = (uint)k;
        }
        if (f.Integer("seed") is long seed) sampling.Seed = unchecked((ulong)seed);
        sampling.Stop.Add(f.Stops("stop"));
        SamplingValidation.Validate(sampling, model.VocabSize, "");
        return sampling;
    }

    private static int? MaxTokens(RequestFields f, string name)
    {
        if (f.Integer(name) is not long n) return null;
        SamplingValidation.MaxTokens(n, name);
        return (int)n;
    }

    private static int TopLogprobs(RequestFields f, string name)
    {
        if (f.Integer(name) is not long n) return 0;
        SamplingValidation.TopLogprobs(n, name);
        return (int)n;
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
