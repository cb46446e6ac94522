using Cluster.Protos.V1;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster experts scale</c>: a new replica count and/or redundant slots per layer, rolled out while serving.</summary>
public static class ExpertsScaleCommand
{
    public const string Usage = "experts scale " + ExpertsControl.GatewayUsage + " [--expert-replicas K] [--redundant-experts R]";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        ControlTarget gateway = ExpertsControl.Gateway(args);
        var request = new ScaleRequest();
        if (args.Has("expert-replicas")) request.Replicas = (uint)args.Int("expert-replicas", 1, 1, 1 << 10);
        if (args.Has("redundant-experts")) request.RedundantExperts = (uint)args.Int("redundant-experts", 0, 0, 1 << 20);
        args.RejectUnknown();
        if (request.Replicas == 0 && !request.HasRedundantExperts) throw new CliException("nothing to change: give --expert-replicas and/or --redundant-experts");
        ExpertsControl.Print(await ExpertsControl.CallAsync(gateway, c => c.ScaleAsync(request, cancellationToken: cancel).ResponseAsync));
        return 0;
    }
}
