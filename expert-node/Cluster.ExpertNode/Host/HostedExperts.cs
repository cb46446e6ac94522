using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;
using Cluster.ExpertNode.Placement;

namespace Cluster.ExpertNode.Host;

/// <summary>
/// The routed experts one expert node holds (its slots in the plan, every MoE layer) and the tokens each slot has
/// served. Compute is serialized: RoutedExperts is not safe to run concurrently, and it parallelizes inside.
/// </summary>
public sealed class HostedExperts
{
    private readonly RoutedExperts?[] _layers;
    private readonly long[][] _tokens;
    private readonly object _compute = new();

    private HostedExperts(PlacementPlan plan, int node, RoutedExperts?[] layers)
    {
        Plan = plan;
        Node = node;
        _layers = layers;
        _tokens = new long[layers.Length][];
        for (int l = 0; l < layers.Length; l++) _tokens[l] = new long[plan.RoutedExperts];
    }

    public PlacementPlan Plan { get; }
    /// <summary>This node's index in the plan.</summary>
    public int Node { get; }

    /// <summary>The checkpoint tensors of <paramref name="node"/>'s slots: what Checkpoint.Open should load and nothing else.</summary>
    public static HashSet<string> TensorNames(PlacementPlan plan, int node)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (LayerPlacement layer in plan.Layers)
            foreach (int e in layer.SlotsOn(node))
                foreach (string proj in (ReadOnlySpan<string>)["gate_proj", "up_proj", "down_proj"])
                    names.Add($"model.layers.{layer.Layer}.mlp.experts.{e}.{proj}.weight");
        return names;
    }

    /// <summary>True for routed expert weights, which an attention node with remote experts leaves out of its Checkpoint.Open.</summary>
    public static bool IsRoutedExpertTensor(string name) => name.Contains(".mlp.experts.", StringComparison.Ordinal);

    public static HostedExperts Load(ITensorSource source, ModelConfig config, PlacementPlan plan, int node)
    {
        plan.CheckFits(config);
        var layers = new RoutedExperts?[config.NumHiddenLayers];
        foreach (LayerPlacement layer in plan.Layers)
            layers[layer.Layer] = RoutedExperts.Load(source, config, layer.Layer, layer.SlotsOn(node).ToArray());
        return new HostedExperts(plan, node, layers);
    }

    public bool HostsLayer(int layer) => (uint)layer < (uint)_layers.Length && _layers[layer] is not null;

    public bool Hosts(int layer, int expert) => HostsLayer(layer) && _layers[layer]!.Hosts(expert);

    /// <summary>Runs the layer's hosted experts over the rows and counts each (row, expert) pair for its slot.</summary>
    public void Run(int layer, ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output)
    {
        long[] tokens = _tokens[layer];
        lock (_compute)
        {
            _layers[layer]!.Run(rows, n, ids, weights, output);
            foreach (int e in ids) if (e >= 0) tokens[e]++;
        }
    }

    /// <summary>Every hosted slot in layer then slot order, with the tokens it has served.</summary>
    public IEnumerable<(int Layer, int Expert, long Tokens)> Slots()
    {
        foreach (LayerPlacement layer in Plan.Layers)
            foreach (int e in layer.SlotsOn(Node).ToArray())
                yield return (layer.Layer, e, Interlocked.Read(ref _tokens[layer.Layer][e]));
    }
}
