namespace Cluster.Engine.Model;

/// <summary>How MLA attends; both give the same result up to rounding.</summary>
public enum AttentionPath
{
    /// <summary>Decompress every cached latent into per-head K and V through kv_b_proj, then attend (HF's way).</summary>
    Naive,
    /// <summary>Fold kv_b_proj into the query and the output and attend over the latents directly (DeepSeek's decode).</summary>
    Absorbed,
}
