namespace Cluster.AttentionNode;

/// <summary>
/// What an attention node serves. Both: Generate with its own prefill (or, given a prefill node, as a decode node)
/// and Prefill for decode nodes. Prefill: only Prefill, streaming each prompt's latent cache to a decode node.
/// Decode: only Generate naming a prefill node, continuing from the cache it receives.
/// </summary>
public enum NodeRole { Both, Prefill, Decode }

public static class NodeRoles
{
    /// <summary>The name on the command line and in statistics: "both", "prefill" or "decode".</summary>
    public static string Name(this NodeRole role) => role switch
    {
        NodeRole.Prefill => "prefill",
        NodeRole.Decode => "decode",
        _ => "both",
    };

    public static NodeRole Parse(string name) => name.ToLowerInvariant() switch
    {
        "both" => NodeRole.Both,
        "prefill" => NodeRole.Prefill,
        "decode" => NodeRole.Decode,
        _ => throw new ArgumentException($"--role: unknown role '{name}' (expected prefill, decode or both)"),
    };
}
