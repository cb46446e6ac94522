namespace Cluster.Gateway.Nodes;

/// <summary>
/// Where an admitted request runs: the node serving its Generate (decode or both) with the cache blocks reserved
/// there, and for a split request the prefill node running its prompt. Held until the request ends.
/// </summary>
public sealed class Placement(AdmissionRequest request, AttentionNode node, AttentionNode? prefill, int blocks)
{
    public AdmissionRequest Request { get; } = request;
    public AttentionNode Node { get; } = node;
    /// <summary>The prefill node named in the request; null when <see cref="Node"/> runs the prompt itself.</summary>
    public AttentionNode? Prefill { get; } = prefill;
    public int Blocks { get; } = blocks;
    /// <summary>The node that runs the prompt, where its tokens wait for the first token.</summary>
    public AttentionNode PrefillOn => Prefill ?? Node;

    // Both changed under the admission lock only.
    internal bool FirstTokenSeen { get; set; }
    internal bool Released { get; set; }
}
