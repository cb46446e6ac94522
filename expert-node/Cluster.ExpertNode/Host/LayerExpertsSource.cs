using Cluster.Engine.Tensors;

namespace Cluster.ExpertNode.Host;

/// <summary>
/// One MoE layer's hosted experts as one tensor source, each expert's tensors read from the source it was loaded from
/// (a live rebalance loads the slots of every plan version from sources of their own), so an expert backend can
/// compose the layer from the experts a node holds now.
/// </summary>
internal sealed class LayerExpertsSource(int layer, ITensorSource?[] experts) : ITensorSource
{
    private readonly string _prefix = $"model.layers.{layer}.mlp.experts.";

    public bool Contains(string name) => Of(name)?.Contains(name) ?? false;

    public Weight Get(string name) => (Of(name) ?? throw new KeyNotFoundException($"{name}: not an expert this node holds for layer {layer}")).Get(name);

    public IEnumerable<string> Names
    {
        get
        {
            foreach (ITensorSource? source in experts)
                if (source is not null)
                    foreach (string name in source.Names)
                        if (Of(name) == source) yield return name;
        }
    }

    /// <summary>The source of the expert a tensor name belongs to, or null when it is not one of this layer's held experts.</summary>
    private ITensorSource? Of(string name)
    {
        if (!name.StartsWith(_prefix, StringComparison.Ordinal)) return null;
        int end = name.IndexOf('.', _prefix.Length);
        return end > _prefix.Length && int.TryParse(name.AsSpan(_prefix.Length, end - _prefix.Length), out int e) && (uint)e < (uint)experts.Length
            ? experts[e]
            : null;
    }
}
