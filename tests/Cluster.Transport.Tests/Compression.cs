using Grpc.Core;

namespace Cluster.Transport.Tests;

/// <summary>How a grpc-dotnet client asks for a compressed request: call metadata the client turns into grpc-encoding.</summary>
public static class Compression
{
    public static Metadata Gzip => new() { { "grpc-internal-encoding-request", "gzip" } };
}
