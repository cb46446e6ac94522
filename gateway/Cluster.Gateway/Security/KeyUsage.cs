namespace Cluster.Gateway.Security;

/// <summary>
/// What one key has used since the gateway started: requests admitted, and the tokens its responses' usage fields
/// reported. Cached prompt tokens are a part of the prompt tokens, counted apart because DeepSeek prices a cache hit
/// below a miss.
/// </summary>
public sealed class KeyUsage
{
    private long _requests, _promptTokens, _cachedPromptTokens, _completionTokens;

    public long Requests => Volatile.Read(ref _requests);
    public long PromptTokens => Volatile.Read(ref _promptTokens);
    public long CachedPromptTokens => Volatile.Read(ref _cachedPromptTokens);
    public long CompletionTokens => Volatile.Read(ref _completionTokens);

    public void AddRequest() => Interlocked.Increment(ref _requests);

    public void AddTokens(int prompt, int cachedPrompt, int completion)
    {
        Interlocked.Add(ref _promptTokens, prompt);
        Interlocked.Add(ref _cachedPromptTokens, cachedPrompt);
        Interlocked.Add(ref _completionTokens, completion);
    }
}
