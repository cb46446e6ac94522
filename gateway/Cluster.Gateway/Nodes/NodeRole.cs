namespace Cluster.Gateway.Nodes;

/// <summary>What the gateway uses an attention node for, as configured (--attention-nodes, --prefill-nodes, --decode-nodes).</summary>
public enum NodeRole
{
    /// <summary>Serves Generate whole: prefill and decode on one node.</summary>
    Both,
    /// <summary>Runs prompts for decode nodes, which pull the cache from it; serves no Generate of its own.</summary>
    Prefill,
    /// <summary>Serves Generate only when told which prefill node runs the prompt.</summary>
    Decode,
}

public static class NodeRoles
{
    /// <summary>The name GetStats reports (AttentionStats.role).</summary>
    public static string Name(this NodeRole role) => role switch
    {
        NodeRole.Prefill => "prefill",
        NodeRole.Decode => "decode",
        _ => "both",
    };

    /// <summary>Whether a role name reported by a node contradicts the configured role; names from nodes without roles pass.</summary>
    public static bool Contradicts(this NodeRole role, string reported) =>
        reported is "prefill" or "decode" or "both" && reported != role.Name();
}
