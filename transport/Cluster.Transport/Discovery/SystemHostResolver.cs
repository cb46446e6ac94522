using System.Net;

namespace Cluster.Transport.Discovery;

/// <summary>The system resolver (Dns.GetHostAddressesAsync), asked afresh each time: what cluster DNS answers in a pod.</summary>
public sealed class SystemHostResolver : IHostResolver
{
    public static readonly SystemHostResolver Instance = new();

    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken ct) => Dns.GetHostAddressesAsync(host, ct);
}
