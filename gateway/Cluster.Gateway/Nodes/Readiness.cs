using Grpc.Core;
using Grpc.Health.V1;
using Microsoft.Extensions.Options;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Gateway.Nodes;

/// <summary>One node's answer to a health check: SERVING, another status, or why it could not be asked.</summary>
public sealed record NodeReadiness(string Endpoint, bool Ready, string Status);

/// <summary>
/// Asks every attention node's grpc.health.v1 service at once. A node reports SERVING only once its model is loaded
/// and its expert nodes are connected, so the cluster is ready when every attention node is.
/// </summary>
public sealed class Readiness(Admission admission, IOptions<NodeProbeOptions> options, TimeProvider time)
{
    private readonly TimeSpan _timeout = options.Value.Timeout;

    public async Task<IReadOnlyList<NodeReadiness>> CheckAsync(CancellationToken ct)
    {
        IReadOnlyList<AttentionNode> nodes = admission.Nodes;
        var checks = new Task<NodeReadiness>[nodes.Count];
        for (int i = 0; i < checks.Length; i++) checks[i] = CheckAsync(nodes[i], ct);
        return await Task.WhenAll(checks).ConfigureAwait(false);
    }

    private async Task<NodeReadiness> CheckAsync(AttentionNode node, CancellationToken ct)
    {
        // The timeout runs on the gateway's clock (a call deadline would run on the wall clock).
        using var timeout = new CancellationTokenSource(_timeout, time);
        using var call = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            var answer = await node.Health.CheckAsync(new HealthCheckRequest(), cancellationToken: call.Token).ConfigureAwait(false);
            bool ready = answer.Status == ServingStatus.Serving;
            if (ready) node.MarkUp();
            return new NodeReadiness(node.Endpoint, ready, ready ? "SERVING" : StatusName(answer.Status));
        }
        catch (Exception e) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested && e is OperationCanceledException or RpcException)
        {
            return new NodeReadiness(node.Endpoint, false, $"DeadlineExceeded: no answer within {_timeout.TotalSeconds:0.###} s");
        }
        catch (RpcException e) when (!ct.IsCancellationRequested)
        {
            return new NodeReadiness(node.Endpoint, false, $"{e.StatusCode}: {e.Status.Detail}");
        }
        catch (ObjectDisposedException) when (node.Retired)
        {
            return new NodeReadiness(node.Endpoint, false, "gone from discovery");
        }
    }

    private static string StatusName(ServingStatus s) => s switch
    {
        ServingStatus.NotServing => "NOT_SERVING",
        ServingStatus.ServiceUnknown => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    };
}
