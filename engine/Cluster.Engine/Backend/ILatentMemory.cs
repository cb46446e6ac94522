namespace Cluster.Engine.Backend;

/// <summary>
/// The latent rows a forward pass writes and attends over, addressed by slot: block * BlockSize + offset, the
/// block ids coming from a <see cref="Model.ForwardBatch"/>'s block tables and slot mapping. Each row is one
/// layer's [kv_lora_rank latent | qk_rope_head_dim rotated rope key] of one position, written as float and stored
/// in the memory's format.
/// </summary>
/// <remarks>
/// Rows of one sequence may be read from several threads at once (attention over heads); all of a batch's rows
/// of a layer are written, by the forward pass's thread, before any of that layer's reads.
/// </remarks>
public interface ILatentMemory
{
    /// <summary>Positions per block.</summary>
    int BlockSize { get; }

    /// <summary>Values per row: kv_lora_rank + qk_rope_head_dim.</summary>
    int RowSize { get; }

    /// <summary>Stores one layer's row at <paramref name="slot"/>, rounded to the memory's format.</summary>
    void Write(int layer, int slot, ReadOnlySpan<float> row);

    /// <summary>Loads <paramref name="count"/> rows of one layer from <paramref name="slot"/> on, all within one block, as float.</summary>
    void Read(int layer, int slot, int count, Span<float> rows);

    /// <summary>
    /// Loads positions [start, start + count) of one sequence (its <paramref name="blockTable"/>: block ids by
    /// position / BlockSize) as float, one row after another: the runs within each block in turn.
    /// </summary>
    void ReadSequence(int layer, ReadOnlySpan<int> blockTable, int start, int count, Span<float> rows)
    {
        int size = BlockSize, width = RowSize;
        if (start < 0 || count < 0) throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) are not a range");
        if (rows.Length < (long)count * width) throw new ArgumentException($"{rows.Length} values for {count} rows of {width}", nameof(rows));
        while (count > 0)
        {
            int index = start / size, offset = start - index * size, run = Math.Min(count, size - offset);
            if ((uint)index >= (uint)blockTable.Length) throw new ArgumentOutOfRangeException(nameof(start), $"position {start} lies past the sequence's {blockTable.Length} blocks");
            Read(layer, blockTable[index] * size + offset, run, rows[..(run * width)]);
            rows = rows[(run * width)..];
            start += run;
            count -= run;
        }
    }
}
