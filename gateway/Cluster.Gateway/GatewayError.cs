namespace Cluster.Gateway;

/// <summary>Why the gateway refused or failed a request, independent of the API it came through.</summary>
public enum GatewayErrorKind
{
    /// <summary>A field is missing, of the wrong type or out of range; the prompt is too long for the context.</summary>
    InvalidRequest,
    ModelNotFound,
    /// <summary>The gateway has API keys and the request presents none of them.</summary>
    Unauthenticated,
    /// <summary>The key has used its requests or tokens per minute (<see cref="GatewayException.RetryAfter"/> says for how long).</summary>
    RateLimited,
    /// <summary>Every node already holds as many requests from this gateway as --max-queue allows.</summary>
    QueueFull,
    /// <summary>No attention node could be reached.</summary>
    Unavailable,
    /// <summary>A node failed the request after accepting it.</summary>
    Internal,
}

/// <summary>A request the gateway cannot serve: the HTTP API maps it to an OpenAI error, gRPC to a status code.</summary>
public sealed class GatewayException(GatewayErrorKind kind, string message, string? param = null, string? code = null) : Exception(message)
{
    public GatewayErrorKind Kind { get; } = kind;
    /// <summary>The request field at fault, when there is one (OpenAI's "param").</summary>
    public string? Param { get; } = param;
    /// <summary>A machine-readable reason such as "context_length_exceeded" (OpenAI's "code").</summary>
    public string? Code { get; } = code;
    /// <summary>When a retry can succeed (HTTP's Retry-After, a gRPC trailer); null when unknown or never.</summary>
    public TimeSpan? RetryAfter { get; init; }

    public static GatewayException Invalid(string param, string message) => new(GatewayErrorKind.InvalidRequest, message, param);
}
