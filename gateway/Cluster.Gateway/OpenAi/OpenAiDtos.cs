using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cluster.Gateway.OpenAi;

// Response bodies of the OpenAI API, field for field. Properties left null are omitted, except where OpenAI always
// sends the key (finish_reason, logprobs, error param and code).

public sealed class ErrorBody
{
    public required ErrorDetail Error { get; init; }
}

public sealed class ErrorDetail
{
    public required string Message { get; init; }
    public required string Type { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? Param { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? Code { get; init; }
}

public sealed class ModelList
{
    public string Object { get; init; } = "list";
    public required List<ModelCard> Data { get; init; }
}

public sealed class ModelCard
{
    public required string Id { get; init; }
    public string Object { get; init; } = "model";
    public long Created { get; init; }
    public string OwnedBy { get; init; } = "cluster";
}

public sealed class UsageDto
{
    public int PromptTokens { get; init; }
    public int CompletionTokens { get; init; }
    public int TotalTokens { get; init; }
    public PromptTokensDetails? PromptTokensDetails { get; init; }
    /// <summary>Prompt tokens served from the prefix cache, under DeepSeek's name (the same as prompt_tokens_details.cached_tokens).</summary>
    public int CachedPromptTokens { get; init; }
}

public sealed class PromptTokensDetails
{
    public int CachedTokens { get; init; }
}

public sealed class ChatCompletion
{
    public required string Id { get; init; }
    public required string Object { get; init; }
    public long Created { get; init; }
    public required string Model { get; init; }
    public required List<ChatChoice> Choices { get; init; }
    public UsageDto? Usage { get; init; }
}

public sealed class ChatChoice
{
    public int Index { get; init; }
    public ChatMessageDto? Message { get; init; }
    public ChatMessageDto? Delta { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ChatLogprobs? Logprobs { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? FinishReason { get; init; }
}

public sealed class ChatMessageDto
{
    public string? Role { get; init; }
    public string? Content { get; init; }
    public string? ReasoningContent { get; init; }
}

public sealed class ChatLogprobs
{
    public required List<ChatTokenLogprob> Content { get; init; }
}

public sealed class ChatTokenLogprob
{
    public required string Token { get; init; }
    public float Logprob { get; init; }
    public required int[] Bytes { get; init; }
    public List<ChatTopLogprob>? TopLogprobs { get; init; }
}

public sealed class ChatTopLogprob
{
    public required string Token { get; init; }
    public float Logprob { get; init; }
    public required int[] Bytes { get; init; }
}

public sealed class TextCompletion
{
    public required string Id { get; init; }
    public string Object { get; init; } = "text_completion";
    public long Created { get; init; }
    public required string Model { get; init; }
    public required List<TextChoice> Choices { get; init; }
    public UsageDto? Usage { get; init; }
}

public sealed class TextChoice
{
    public int Index { get; init; }
    public required string Text { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public TextLogprobs? Logprobs { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? FinishReason { get; init; }
}

/// <summary>The legacy completions logprobs: parallel arrays, alternatives as token -> logprob maps.</summary>
public sealed class TextLogprobs
{
    public required List<string> Tokens { get; init; }
    public required List<float> TokenLogprobs { get; init; }
    public required List<Dictionary<string, float>> TopLogprobs { get; init; }
    public required List<int> TextOffset { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(TextCompletion))]
internal sealed partial class OpenAiJson : JsonSerializerContext
{
    /// <summary>Writes non-ASCII text as UTF-8 as OpenAI does, not as \u escapes (HTML escaping has no use in a JSON API).</summary>
    public static OpenAiJson Web { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
