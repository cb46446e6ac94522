using Grpc.Core;

namespace Cluster.Transport;

/// <summary>
/// Refuses every call without the cluster's token (UNAUTHENTICATED), except to the services named open: health and
/// reflection always (probes and tools), and whatever public service a role serves (the gateway's Inference, which
/// checks API keys instead). Deny by default, so a service added later is protected without anyone remembering to.
/// </summary>
public sealed class ClusterTokenInterceptor : CallCheckInterceptor
{
    private readonly ClusterToken _token;
    private readonly HashSet<string>.AlternateLookup<ReadOnlySpan<char>> _open;

    /// <param name="openServices">Full service names (package.Service) callable without the token, besides <see cref="AlwaysOpen"/>.</param>
    public ClusterTokenInterceptor(ClusterToken token, IEnumerable<string> openServices)
    {
        _token = token;
        var open = new HashSet<string>(AlwaysOpen, StringComparer.Ordinal);
        open.UnionWith(openServices);
        _open = open.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Services no role protects with the token.</summary>
    public static readonly IReadOnlySet<string> AlwaysOpen = new HashSet<string>(StringComparer.Ordinal)
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    };

    protected override void Check(ServerCallContext context)
    {
        if (IsOpen(context.Method)) return;
        string? presented = context.RequestHeaders.GetValue(ClusterToken.MetadataKey);
        if (presented is null)
            throw new RpcException(new Status(StatusCode.Unauthenticated, $"{context.Method} is internal to the cluster: the call has no '{ClusterToken.MetadataKey}' metadata"));
        if (!_token.Matches(presented))
            throw new RpcException(new Status(StatusCode.Unauthenticated, $"{context.Method}: the '{ClusterToken.MetadataKey}' metadata is not this cluster's token"));
    }

    /// <summary>"/package.Service/Method": the service is what lies between the first two slashes.</summary>
    private bool IsOpen(string method)
    {
        int end = method.IndexOf('/', 1);
        return end > 0 && _open.Contains(method.AsSpan(1, end - 1));
    }
}
