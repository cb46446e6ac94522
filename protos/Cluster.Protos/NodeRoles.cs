namespace Cluster.Protos.V1;

/// <summary>The names of <see cref="NodeRole"/> on the command line, in logs and in reports: "both", "prefill", "decode".</summary>
public static class NodeRoles
{
    public static string Name(this NodeRole role) => role switch
    {
        NodeRole.Both => "both",
        NodeRole.Prefill => "prefill",
        NodeRole.Decode => "decode",
        _ => "unspecified",
    };

    /// <summary>Whether <paramref name="role"/> is one a node can serve as (not unspecified nor out of the enum).</summary>
    public static bool IsServed(this NodeRole role) => role is NodeRole.Both or NodeRole.Prefill or NodeRole.Decode;

    /// <summary>"both", "prefill" or "decode", in any case; else ArgumentException saying what is expected.</summary>
    public static NodeRole Parse(string name) => name.ToLowerInvariant() switch
    {
        "both" => NodeRole.Both,
        "prefill" => NodeRole.Prefill,
        "decode" => NodeRole.Decode,
        _ => throw new ArgumentException($"unknown role '{name}' (expected prefill, decode or both)"),
    };
}
