using System.Globalization;
using System.Net.Http.Json;

namespace Cluster.Transport.Discovery;

/// <summary>
/// The few endpoints of Consul's agent HTTP API the roles use, on HttpClient: register and deregister a service
/// with the local agent, and read a service's passing instances as a blocking query.
/// </summary>
public sealed class ConsulAgent : IDisposable
{
    private readonly HttpClient _http;

    /// <param name="address">The agent's HTTP address, e.g. http://127.0.0.1:8500.</param>
    public ConsulAgent(Uri address)
    {
        if (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
            throw new FormatException($"the Consul agent's address must be http:// or https:// (got '{address}')");
        // Blocking queries hang up to their wait plus Consul's jitter (wait/16); each call carries its own bound instead.
        _http = new HttpClient { BaseAddress = address, Timeout = Timeout.InfiniteTimeSpan };
    }

    public Uri Address => _http.BaseAddress!;

    public async Task RegisterAsync(ConsulServiceDefinition service, CancellationToken ct)
    {
        using var response = await _http.PutAsJsonAsync("v1/agent/service/register", service, ConsulJson.Default.ConsulServiceDefinition, ct).ConfigureAwait(false);
        await EnsureSuccessAsync(response, $"registering service {service.Id}", ct).ConfigureAwait(false);
    }

    public async Task DeregisterAsync(string serviceId, CancellationToken ct)
    {
        using var response = await _http.PutAsync($"v1/agent/service/deregister/{Uri.EscapeDataString(serviceId)}", null, ct).ConfigureAwait(false);
        await EnsureSuccessAsync(response, $"deregistering service {serviceId}", ct).ConfigureAwait(false);
    }

    /// <summary>
    /// GET /v1/health/service/&lt;name&gt;?passing=true: the instances whose every check passes, and X-Consul-Index.
    /// With <paramref name="index"/> above 0 the agent holds the answer until the state moves past it or
    /// <paramref name="wait"/> is over.
    /// </summary>
    public async Task<(List<ConsulHealthEntry> Entries, ulong Index)> PassingAsync(string service, ulong index, TimeSpan wait, CancellationToken ct)
    {
        string query = $"v1/health/service/{Uri.EscapeDataString(service)}?passing=true";
        if (index > 0) query += $"&index={index}&wait={(long)wait.TotalMilliseconds}ms";
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // Consul adds up to wait/16 of jitter; past that plus a margin the agent is not answering.
        bound.CancelAfter(wait + wait / 16 + TimeSpan.FromSeconds(5));
        using var response = await _http.GetAsync(query, bound.Token).ConfigureAwait(false);
        await EnsureSuccessAsync(response, $"reading service {service}", ct).ConfigureAwait(false);
        ulong next = response.Headers.TryGetValues("X-Consul-Index", out var values)
            && ulong.TryParse(values.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out ulong parsed) ? parsed : 0;
        var entries = await response.Content.ReadFromJsonAsync(ConsulJson.Default.ListConsulHealthEntry, bound.Token).ConfigureAwait(false) ?? [];
        return (entries, next);
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        string body = (await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false)).Trim();
        throw new HttpRequestException($"Consul agent: {what}: HTTP {(int)response.StatusCode}{(body.Length > 0 ? ": " + body : "")}", null, response.StatusCode);
    }

    public void Dispose() => _http.Dispose();
}
