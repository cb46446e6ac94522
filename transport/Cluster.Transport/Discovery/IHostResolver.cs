using System.Net;

namespace Cluster.Transport.Discovery;

/// <summary>Resolves a DNS name to its addresses: the seam through which tests change what a name resolves to.</summary>
public interface IHostResolver
{
    Task<IPAddress[]> ResolveAsync(string host, CancellationToken ct);
}
