using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// An attention node started on a plan whose one expert node is not up yet, so it listens and waits for it (what the
/// probe tests watch), and that expert node, started when the test is ready for it.
/// </summary>
internal sealed class WaitingForExpert
{
    private readonly string _planPath;
    private readonly int _expertPort;

    private WaitingForExpert(string planPath, int expertPort, Task<AttentionHost> starting) =>
        (_planPath, _expertPort, Starting) = (planPath, expertPort, starting);

    /// <summary>The attention node's start, which completes once the expert node answers and the model is loaded.</summary>
    public Task<AttentionHost> Starting { get; }

    /// <summary>Writes the plan into <paramref name="dir"/> and starts the attention node on <paramref name="port"/> (and an HTTP port when given).</summary>
    public static WaitingForExpert Start(string dir, int expertPort, int port, int? httpPort = null)
    {
        PlacementPlan plan = PlacementPlanner.Plan(TinyModel.Config, PlacementPlanner.LoopbackNodes(1, expertPort), null, 0);
        string planPath = Path.Combine(dir, "plan.json");
        plan.Save(planPath);
        return new WaitingForExpert(planPath, expertPort, AttentionHost.StartAsync(new AttentionOptions
        {
            ModelDir = TinyModel.Directory, PlanPath = planPath, Port = port, HttpPort = httpPort, ExpertWait = TimeSpan.FromSeconds(120),
        }));
    }

    public Task<ExpertHost> StartExpertAsync() =>
        ExpertHost.StartAsync(new ExpertHostOptions { ModelDir = TinyModel.Directory, PlanPath = _planPath, NodeId = "expert-0", Port = _expertPort });
}
