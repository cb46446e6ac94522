namespace Cluster.ExpertNode.Host;

/// <summary>The message limit of the Dispatch streams, on both sides.</summary>
public static class DispatchLimits
{
    /// <summary>Largest dispatch or combine frame either side accepts: a long prompt's prefill goes in one frame per node.</summary>
    public const int MaxFrameBytes = 1 << 30;
}
