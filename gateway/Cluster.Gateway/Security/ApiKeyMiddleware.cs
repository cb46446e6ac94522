using Cluster.Gateway.Metrics;
using Cluster.Gateway.OpenAi;
using Microsoft.AspNetCore.Http;

namespace Cluster.Gateway.Security;

/// <summary>
/// The HTTP port's door: every request but the probes' and the scrape's needs <c>Authorization: Bearer KEY</c> with
/// a configured key, else 401 in OpenAI's shape (code <c>invalid_api_key</c>). Deny by default, so a route added
/// later is protected without anyone remembering to. The key's account rides on the request for the endpoints.
/// </summary>
public sealed class ApiKeyMiddleware(KeyAccounts accounts, GatewayMetrics metrics)
{
    /// <summary>Paths served without a key: liveness, readiness and metrics, which probes and scrapers call.</summary>
    public static readonly IReadOnlySet<string> OpenPaths = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "/healthz", "/readyz", "/metrics" };

    private static readonly object s_accountKey = new();

    /// <summary>The account the request was authenticated as (the anonymous one on an open gateway).</summary>
    public static KeyAccount AccountOf(HttpContext http) =>
        http.Items.TryGetValue(s_accountKey, out object? account) ? (KeyAccount)account! : throw new InvalidOperationException("the request did not pass the API key check");

    public async Task InvokeAsync(HttpContext http, RequestDelegate next)
    {
        if (OpenPaths.Contains(http.Request.Path.Value ?? ""))
        {
            await next(http).ConfigureAwait(false);
            return;
        }
        string? presented = Bearer(http.Request.Headers.Authorization.ToString());
        KeyAccount? account = accounts.Authenticate(presented);
        if (account is null)
        {
            if (IsGeneration(http.Request.Path)) metrics.Request("http", GatewayMetrics.Outcome(GatewayErrorKind.Unauthenticated));
            http.Response.Headers.WWWAuthenticate = "Bearer";
            string message = presented is null
                ? "no API key: send it as the header 'Authorization: Bearer KEY'"
                : "the API key is not one of this gateway's";
            await ApiErrors.WriteAsync(http, StatusCodes.Status401Unauthorized, ApiErrors.Body(StatusCodes.Status401Unauthorized, message, code: "invalid_api_key"))
                .ConfigureAwait(false);
            return;
        }
        http.Items[s_accountKey] = account;
        await next(http).ConfigureAwait(false);
    }

    /// <summary>The key of a <c>Bearer KEY</c> credential (scheme case-insensitive, as RFC 9110 has it); null for none or another scheme.</summary>
    public static string? Bearer(string? authorization)
    {
        const string scheme = "Bearer ";
        if (authorization is null || !authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return null;
        string key = authorization[scheme.Length..].Trim();
        return key.Length > 0 ? key : null;
    }

    private static bool IsGeneration(PathString path) =>
        path.Equals("/v1/chat/completions", StringComparison.OrdinalIgnoreCase) || path.Equals("/v1/completions", StringComparison.OrdinalIgnoreCase);
}
