using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.ExpertNode.Placement;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster experts plan</c>: computes a placement plan, prints each node's slots and expected load, writes the JSON.</summary>
public static class ExpertsPlanCommand
{
    public const string Usage = "experts plan --model DIR --expert-nodes N [--expert-replicas K] [--redundant-experts R] [--slots-per-node S] [--expert-load FILE] [--first-port P] [--version V] [--out FILE]";

    public static Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string dir = args.Required("model");
        int nodes = args.Int("expert-nodes", 0, 1, 1024);
        if (!args.Has("expert-nodes")) throw new CliException("missing --expert-nodes");
        int redundant = args.Int("redundant-experts", 0, 0, 1 << 20);
        int replicas = args.Int("expert-replicas", 1, 1, 1 << 10);
        int? slots = args.Has("slots-per-node") ? args.Int("slots-per-node", 0, 1, 1 << 20) : null;
        string? loadPath = args.String("expert-load");
        int firstPort = args.Int("first-port", 7100, 1, 65535);
        long version = args.Long("version", 1, 1);
        string? outPath = args.String("out");
        args.RejectUnknown();
        if (!Directory.Exists(dir)) throw new CliException($"{dir}: model directory not found");
        if (firstPort + nodes - 1 > 65535) throw new CliException($"--first-port {firstPort} leaves no room for {nodes} nodes below port 65536");

        ModelConfig config = ModelConfig.Load(Path.Combine(dir, Checkpoint.ConfigFile));
        if (config.NRoutedExperts == 0) throw new CliException($"{dir}: the model has no routed experts to place");
        ExpertLoad? load = loadPath is null ? null : ExpertLoad.Load(loadPath, config);
        PlacementPlan plan = PlacementPlanner.Plan(config, PlacementPlanner.LoopbackNodes(nodes, firstPort), slots, redundant, load, (ulong)version, replicas);
        ExpectedLoad expected = ExpectedLoad.Of(plan, load);

        var o = Console.Out;
        o.WriteLine($"plan v{plan.Version}: {plan.Layers.Count} MoE layers x {config.NRoutedExperts} experts{(replicas > 1 ? $" x {replicas} replicas" : "")} + {redundant} redundant per layer on {nodes} nodes"
            + (load is null ? " (no expert-load file: equal load assumed)" : $" (load from {loadPath})"));
        o.WriteLine($"{"node",-12} {"endpoint",-20} {"slots",6} {"expected load",14}");
        double layers = plan.Layers.Count;
        for (int i = 0; i < nodes; i++)
            o.WriteLine($"{plan.Nodes[i].Id,-12} {plan.Nodes[i].Endpoint,-20} {expected.NodeSlots[i],6} {expected.NodeLoad[i] / layers * 100,13:F2}%");
        o.WriteLine($"max/mean load {expected.MaxOverMean:F3} over all layers, {expected.WorstLayerMaxOverMean:F3} in the worst layer");
        if (outPath is not null)
        {
            plan.Save(outPath);
            o.WriteLine($"wrote {outPath}");
        }
        return Task.FromResult(0);
    }
}
