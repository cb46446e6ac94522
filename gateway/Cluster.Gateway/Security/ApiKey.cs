namespace Cluster.Gateway.Security;

/// <summary>
/// One client's key as the gateway keeps it: the name that labels its usage and logs, the SHA-256 of the key (the
/// key itself is never held), and its limits per minute (null: none).
/// </summary>
public sealed record ApiKey(string Name, byte[] Hash, int? RequestsPerMinute, int? TokensPerMinute)
{
    /// <summary>The account every request is charged to when the gateway has no keys (it is open).</summary>
    public const string AnonymousName = "anonymous";

    public override string ToString() => $"api-key({Name})";
}
