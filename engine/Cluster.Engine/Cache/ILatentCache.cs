namespace Cluster.Engine.Cache;

/// <summary>
/// MLA's KV cache for one sequence: per layer and position only the compressed latent (kv_lora_rank values,
/// after kv_a_layernorm) followed by the rotated rope key (qk_rope_head_dim values). Attention addresses
/// positions, not storage, so a paged block manager can implement this over fixed-size blocks.
/// </summary>
/// <remarks>
/// Rows are written as float and stored in the cache's <see cref="LatentFormat"/>. Serving nodes store BF16 (the
/// paged cache's default), as DeepSeek serves with a BF16 cache: half the memory of float, and the stored bytes
/// move between nodes unchanged, so a decode node attends over exactly the rows its prefill node wrote.
/// <see cref="SequenceCache"/> stores F32 by default for the reference path and BF16 on request, to reproduce a
/// serving node bit for bit in one process.
/// </remarks>
public interface ILatentCache
{
    /// <summary>Values per position per layer: kv_lora_rank + qk_rope_head_dim.</summary>
    int RowSize { get; }

    /// <summary>Positions whose rows are complete in every layer.</summary>
    int Length { get; }

    /// <summary>Makes positions [0, length) writable; throws when the cache cannot grow that far.</summary>
    void Reserve(int length);

    /// <summary>Stores the row [latent | k_pe] of one layer and reserved position, rounded to the cache's format.</summary>
    void Write(int layer, int position, ReadOnlySpan<float> row);

    /// <summary>Loads the row of one layer and reserved position as float.</summary>
    void Read(int layer, int position, Span<float> row);

    /// <summary>
    /// Loads rows [start, start + count) of one layer (reserved positions) as float, one after another. Attention
    /// reads a sequence's rows this way, in runs rather than row by row.
    /// </summary>
    void ReadRows(int layer, int start, int count, Span<float> rows)
    {
        for (int i = 0; i < count; i++) Read(layer, start + i, rows.Slice(i * RowSize, RowSize));
    }

    /// <summary>Marks <paramref name="count"/> more positions complete after a forward pass wrote them in every layer.</summary>
    void Advance(int count);
}
