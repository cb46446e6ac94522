using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Cluster.ExpertNode.Host;

/// <summary>
/// Calls the node's own live-change methods once before it reports ready, with requests that change nothing: a
/// prepare of the version it already holds and a release that keeps every version. Their code (the handlers, their
/// messages, the gRPC plumbing around them, some 150 methods with the rollout's side) is compiled then, so the first
/// live change does not compile it on the cores the steps share: bench rebalance measured 75 ms of JIT in a fresh
/// process's first change and none in its second.
/// </summary>
internal static class ControlPathWarmup
{
    public static async Task RunAsync(int port, PlacementPlan plan, ClusterToken? token, ILogger logger, CancellationToken cancel)
    {
        try
        {
            using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcClientOptions { ClusterToken = token });
            var client = new Protos.V1.ExpertService.ExpertServiceClient(channel.Invoker);
            DateTime deadline = DateTime.UtcNow.AddSeconds(30);
            await client.GetInfoAsync(new GetExpertInfoRequest(), deadline: deadline, cancellationToken: cancel).ConfigureAwait(false);
            await client.PrepareAsync(new PreparePlanRequest { PlanJson = plan.ToJson() }, deadline: deadline, cancellationToken: cancel).ConfigureAwait(false);
            await client.ReleaseAsync(new ReleasePlanRequest { KeepFromVersion = 0 }, deadline: deadline, cancellationToken: cancel).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            // Only a cost moves when this fails (to the first change), so the node serves anyway.
            logger.LogWarning("warming the plan-change path failed: {Status} {Detail}", e.StatusCode, e.Status.Detail);
        }
    }
}
