using Cluster.Protos.V1;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster experts add</c>: gives slots to a running expert node (started with <c>serve expert --join</c>), rolled out while serving.</summary>
public static class ExpertsAddCommand
{
    public const string Usage = "experts add --node-id ID --endpoint HOST:PORT " + ExpertsControl.GatewayUsage;

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        ControlTarget gateway = ExpertsControl.Gateway(args);
        var request = new AddNodeRequest { NodeId = args.Required("node-id"), Endpoint = args.Required("endpoint") };
        args.RejectUnknown();
        ExpertsControl.Print(await ExpertsControl.CallAsync(gateway, c => c.AddNodeAsync(request, cancellationToken: cancel).ResponseAsync));
        return 0;
    }
}
