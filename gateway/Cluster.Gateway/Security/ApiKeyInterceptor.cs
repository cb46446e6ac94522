using Cluster.Gateway.Metrics;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.Gateway.Security;

/// <summary>
/// The gRPC port's door, on cluster.v1.Inference only (health and reflection stay open): the call needs
/// <c>authorization: Bearer KEY</c> metadata with a configured key, else UNAUTHENTICATED. The key's account rides
/// on the call for the service.
/// </summary>
public sealed class ApiKeyInterceptor(KeyAccounts accounts, GatewayMetrics metrics) : CallCheckInterceptor
{
    private static readonly object s_accountKey = new();

    /// <summary>The account the call was authenticated as (the anonymous one on an open gateway).</summary>
    public static KeyAccount AccountOf(ServerCallContext context) =>
        context.UserState.TryGetValue(s_accountKey, out object? account) ? (KeyAccount)account! : throw new InvalidOperationException("the call did not pass the API key check");

    protected override void Check(ServerCallContext context)
    {
        string? presented = ApiKeyMiddleware.Bearer(context.RequestHeaders.GetValue("authorization"));
        KeyAccount? account = accounts.Authenticate(presented);
        if (account is null)
        {
            if (context.Method.EndsWith("/Generate", StringComparison.Ordinal) || context.Method.EndsWith("/GenerateStream", StringComparison.Ordinal))
                metrics.Request("grpc", GatewayMetrics.Outcome(GatewayErrorKind.Unauthenticated));
            throw new RpcException(new Status(StatusCode.Unauthenticated, presented is null
                ? $"{context.Method}: no API key: send it as 'authorization: Bearer KEY' metadata"
                : $"{context.Method}: the API key is not one of this gateway's"));
        }
        context.UserState[s_accountKey] = account;
    }
}
