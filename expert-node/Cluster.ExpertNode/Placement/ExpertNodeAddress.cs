using Cluster.Transport;

namespace Cluster.ExpertNode.Placement;

/// <summary>An expert node as the plan names it: its id (its --node-id) and where its gRPC port listens.</summary>
public sealed record ExpertNodeAddress(string Id, string Endpoint)
{
    /// <summary>The gRPC address clients dial.</summary>
    public Uri Uri => PeerAddress.Parse(Endpoint, $"expert node {Id}");

    /// <summary>Checks "host:port" (or an http(s):// address), naming <paramref name="what"/> in the error.</summary>
    public static void ValidateEndpoint(string endpoint, string what) => PeerAddress.Parse(endpoint, what);
}
