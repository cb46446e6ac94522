using Cluster.Protos.V1;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// The nodes requests may be placed on, by role. Made whole when discovery changes the set and never changed in
/// place, so a reader outside admission's lock sees one consistent set.
/// </summary>
internal sealed class NodePools
{
    public static readonly NodePools Empty = new([]);

    public NodePools(AttentionNode[] all)
    {
        All = all;
        Both = Array.FindAll(all, n => n.Role == NodeRole.Both);
        Prefill = Array.FindAll(all, n => n.Role == NodeRole.Prefill);
        Decode = Array.FindAll(all, n => n.Role == NodeRole.Decode);
    }

    public AttentionNode[] All { get; }
    public AttentionNode[] Both { get; }
    public AttentionNode[] Prefill { get; }
    public AttentionNode[] Decode { get; }

    /// <summary>
    /// Whether some node (or prefill/decode pair) is usable, so a request could be placed once there is room; with
    /// <paramref name="avoid"/>, one of other nodes.
    /// </summary>
    public bool HasRoute(IReadOnlySet<AttentionNode>? avoid = null)
    {
        bool Usable(AttentionNode n) => n.State.Usable && avoid?.Contains(n) != true;
        return Array.Exists(Both, Usable) || (Array.Exists(Prefill, Usable) && Array.Exists(Decode, Usable));
    }

    /// <summary>Why the request cannot be placed however long it waits, or null.</summary>
    public GatewayException? Unplaceable(AdmissionRequest request)
    {
        // A prefill node holds the prompt while it runs it; a decode node is a route only with a prefill node that can.
        bool prefillUp = false, prefillFits = false;
        NodeState? largestPrefill = null;
        foreach (AttentionNode n in Prefill)
        {
            NodeState s = n.State;
            if (!s.Usable) continue;
            prefillUp = true;
            if (s.CanEverHold(request.Prompt.Count)) prefillFits = true;
            else if (largestPrefill is null || s.Tokens > largestPrefill.Tokens) largestPrefill = s;
        }
        bool routed = false;
        NodeState? largest = null;
        foreach (AttentionNode n in All)
        {
            NodeState s = n.State;
            if (!s.Usable || n.Role == NodeRole.Prefill || (n.Role == NodeRole.Decode && !prefillUp)) continue;
            routed = true;
            if (n.Role == NodeRole.Decode && !prefillFits) continue;
            if (s.CanEverHold(request.ContextTokens)) return null;
            if (largest is null || s.Tokens > largest.Tokens) largest = s;
        }
        if (!routed)
        {
            if (All.Length == 0) return new GatewayException(GatewayErrorKind.Unavailable, "no attention node can take the request (discovery has found none)");
            var why = new List<string>(All.Length);
            foreach (AttentionNode n in All)
                if (!n.State.Usable) why.Add($"{n.Endpoint}: {n.State.Error}");
            return new GatewayException(GatewayErrorKind.Unavailable, $"no attention node can take the request ({string.Join("; ", why)})");
        }
        if (largest is null)
            return new GatewayException(GatewayErrorKind.InvalidRequest,
                $"the prompt needs {largestPrefill!.BlocksFor(request.Prompt.Count)} cache blocks of {largestPrefill.BlockSize} tokens "
                + $"({request.Prompt.Count} tokens), more than any prefill node holds (at most {largestPrefill.BlocksTotal} blocks); reduce the prompt",
                null, "context_length_exceeded");
        return new GatewayException(GatewayErrorKind.InvalidRequest,
            $"the request needs {largest.BlocksFor(request.ContextTokens)} cache blocks of {largest.BlockSize} tokens "
            + $"({request.Prompt.Count} prompt + {request.MaxTokens} completion tokens), more than any attention node holds "
            + $"(at most {largest.BlocksTotal} blocks, {largest.Tokens} tokens); reduce the prompt or max_tokens",
            null, "context_length_exceeded");
    }
}
