namespace Cluster.ExpertNode.Placement;

/// <summary>An expert node as the plan names it: its id (its --node-id) and where its gRPC port listens.</summary>
public sealed record ExpertNodeAddress(string Id, string Endpoint)
{
    /// <summary>The gRPC address clients dial.</summary>
    public Uri Uri => new($"http://{Endpoint}");

    /// <summary>Parses "host:port" (port 1..65535), naming <paramref name="what"/> in the error.</summary>
    public static void ValidateEndpoint(string endpoint, string what)
    {
        int colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint.AsSpan(colon + 1), out int port) || port is < 1 or > 65535)
            throw new FormatException($"{what}: endpoint '{endpoint}' is not host:port");
    }
}
