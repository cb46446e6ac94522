using Cluster.Protos.V1;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster experts drain</c>: moves a node's experts to the others, then no rows go to it (it may be stopped).</summary>
public static class ExpertsDrainCommand
{
    public const string Usage = "experts drain --node-id ID " + ExpertsControl.GatewayUsage;

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        ControlTarget gateway = ExpertsControl.Gateway(args);
        var request = new DrainNodeRequest { NodeId = args.Required("node-id") };
        args.RejectUnknown();
        ExpertsControl.Print(await ExpertsControl.CallAsync(gateway, c => c.DrainNodeAsync(request, cancellationToken: cancel).ResponseAsync));
        return 0;
    }
}
