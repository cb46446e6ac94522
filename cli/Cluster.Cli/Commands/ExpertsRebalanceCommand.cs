using Cluster.Protos.V1;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster experts rebalance</c>: a new plan from the tokens each expert served since the last one, rolled out while serving; optionally every N seconds.</summary>
public static class ExpertsRebalanceCommand
{
    public const string Usage = "experts rebalance " + ExpertsControl.GatewayUsage + " [--every SECONDS]";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        ControlTarget gateway = ExpertsControl.Gateway(args);
        double every = args.Double("every", 0, 0, 86400);
        args.RejectUnknown();
        while (true)
        {
            PlanChangeReply reply = await ExpertsControl.CallAsync(gateway, c => c.RebalanceAsync(new RebalanceRequest(), cancellationToken: cancel).ResponseAsync);
            ExpertsControl.Print(reply);
            if (every == 0) return 0;
            await Task.Delay(TimeSpan.FromSeconds(every), cancel);
        }
    }
}
