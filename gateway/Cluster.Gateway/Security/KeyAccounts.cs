using Microsoft.Extensions.Logging;

namespace Cluster.Gateway.Security;

/// <summary>
/// Every key's account, made at start from the configured <see cref="ApiKeys"/>; with none, the one anonymous
/// account without limits that every request is charged to (the gateway is open, which it says once at start).
/// </summary>
public sealed class KeyAccounts : IDisposable
{
    private readonly Dictionary<ApiKey, KeyAccount> _accounts = [];

    public KeyAccounts(ApiKeys keys, TimeProvider time, ILogger<KeyAccounts> logger)
    {
        Keys = keys;
        if (keys.IsOpen)
        {
            Anonymous = new KeyAccount(new ApiKey(ApiKey.AnonymousName, [], null, null), time);
            All = [Anonymous];
            logger.LogWarning("no API keys configured (--api-keys-file, {Variable}): the HTTP and gRPC APIs serve anyone who can reach them", ApiKeys.EnvironmentVariable);
            return;
        }
        foreach (ApiKey key in keys.Keys) _accounts[key] = new KeyAccount(key, time);
        All = [.. _accounts.Values];
    }

    public ApiKeys Keys { get; }
    /// <summary>The open gateway's account; null when keys are configured.</summary>
    public KeyAccount? Anonymous { get; }
    public IReadOnlyList<KeyAccount> All { get; }

    /// <summary>The account of the key <paramref name="presented"/> is; the anonymous one when the gateway is open; else null.</summary>
    public KeyAccount? Authenticate(string? presented) =>
        Anonymous ?? (Keys.Find(presented) is { } key ? _accounts[key] : null);

    public void Dispose()
    {
        foreach (KeyAccount account in All) account.Dispose();
    }
}
