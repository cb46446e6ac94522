using System.Text.Json.Serialization;

namespace Cluster.Gateway.Security;

/// <summary><c>GET /v1/usage</c>: what the caller's key has used since the gateway started.</summary>
public sealed class UsageReport
{
    public string Object => "usage";
    /// <summary>The key's name in the keys file (never the key).</summary>
    public required string Key { get; init; }
    public long Requests { get; init; }
    public long PromptTokens { get; init; }
    /// <summary>Of the prompt tokens, those read from a node's prefix cache.</summary>
    public long CachedPromptTokens { get; init; }
    public long CompletionTokens { get; init; }
    public long TotalTokens => PromptTokens + CompletionTokens;

    public static UsageReport Of(KeyAccount account) => new()
    {
        Key = account.Name,
        Requests = account.Usage.Requests,
        PromptTokens = account.Usage.PromptTokens,
        CachedPromptTokens = account.Usage.CachedPromptTokens,
        CompletionTokens = account.Usage.CompletionTokens,
    };
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(UsageReport))]
internal sealed partial class UsageJson : JsonSerializerContext;
