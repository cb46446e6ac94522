using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.Cli.Commands;

/// <summary>What the <c>cluster experts status|rebalance|scale|add|drain</c> verbs share: the gateway's Control client and how a plan change is printed.</summary>
internal static class ExpertsControl
{
    public const string GatewayUsage = "[--gateway 127.0.0.1:8001] " + ClusterTokenArgs.Usage;

    /// <summary>
    /// Calls the gateway's cluster.v1.Control at <paramref name="gateway"/> (its gRPC port) with the cluster's token when
    /// one is given (the Control service is internal to the cluster); gRPC errors become one-line CLI errors.
    /// </summary>
    public static async Task<T> CallAsync<T>(ControlTarget gateway, Func<Protos.V1.Control.ControlClient, Task<T>> call)
    {
        if (!PeerAddress.TryParse(gateway.Address, out Uri? address)) throw new CliException($"--gateway must be host:port or an http(s):// address (got '{gateway.Address}')");
        using var channel = PeerChannel.ForAddress(address, new GrpcClientOptions { Resilience = null, ClusterToken = gateway.Token });
        try { return await call(new Protos.V1.Control.ControlClient(channel.Invoker)).ConfigureAwait(false); }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && e.Status.Detail.Contains("Error connecting", StringComparison.OrdinalIgnoreCase))
        {
            throw new IOException($"cannot reach the gateway at {gateway.Address}: {e.Status.Detail}");
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unauthenticated)
        {
            throw new IOException($"{e.Status.Detail}: give the cluster's token (--{ClusterTokenArgs.Flag} or {ClusterToken.EnvironmentVariable})");
        }
        catch (RpcException e) { throw new IOException($"{e.Status.Detail} ({e.StatusCode})"); }
    }

    public static ControlTarget Gateway(CliArgs args) => new(args.String("gateway", "127.0.0.1:8001"), ClusterTokenArgs.Parse(args));

    public static void Print(PlanChangeReply r) =>
        Console.Out.WriteLine($"plan version {r.FromVersion} -> {r.ToVersion} on {r.AttentionNodes} attention node(s): {r.LoadedSlots} slots loaded "
            + $"({r.LoadedBytes:N0} bytes), {r.DroppedSlots} dropped; prepare {r.PrepareSeconds:F2} s, switch {r.SwitchSeconds:F2} s; "
            + $"expected max/mean rows per node {r.ExpectedMaxOverMean:F3}");
}

/// <summary>The gateway's gRPC address and the credential its Control service asks for.</summary>
internal sealed record ControlTarget(string Address, ClusterToken? Token);
