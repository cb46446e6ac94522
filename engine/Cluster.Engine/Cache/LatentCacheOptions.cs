namespace Cluster.Engine.Cache;

/// <summary>Shape of a node's paged latent cache.</summary>
public sealed record LatentCacheOptions
{
    /// <summary>Tokens per block (every layer of those tokens lives in the block).</summary>
    public int BlockSize { get; init; } = 64;
    /// <summary>Memory for all blocks together; the block count is this divided by the bytes of one block.</summary>
    public long BudgetBytes { get; init; } = 1L << 30;
    public LatentFormat Format { get; init; } = LatentFormat.BF16;
}
