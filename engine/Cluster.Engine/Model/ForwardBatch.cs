namespace Cluster.Engine.Model;

/// <summary>
/// One forward pass described by plain arrays, the way nano-vllm's model runner hands its model a batch: for each
/// row its token id, its position in its sequence, its sequence and the slot its latent row is written to; for
/// each sequence its block table. Rows of any mix of sequences (prefill chunks, decode steps) go in one pass;
/// each row attends over its sequence's positions up to its own, read through the block table.
/// </summary>
/// <remarks>
/// Nothing here is checked against a cache: whoever builds the batch (the scheduler, or <see cref="TokenBatch.Prepare"/>
/// for the adapters over <see cref="Cache.ILatentCache"/>) owns the blocks it names, like nano-vllm's block manager.
/// </remarks>
public readonly struct ForwardBatch
{
    private readonly ReadOnlyMemory<int> _tokens, _positions, _sequences, _slots, _blockTables;

    /// <param name="tokens">[rows] token ids.</param>
    /// <param name="positions">[rows] each row's position in its sequence.</param>
    /// <param name="sequences">[rows] each row's sequence: a row of <paramref name="blockTables"/>.</param>
    /// <param name="slotMapping">[rows] block * BlockSize + offset where each row's latent goes (its position's block and offset).</param>
    /// <param name="blockTables">[sequences, <paramref name="blockTableWidth"/>] block ids by position / BlockSize, padded with -1.</param>
    public ForwardBatch(ReadOnlyMemory<int> tokens, ReadOnlyMemory<int> positions, ReadOnlyMemory<int> sequences, ReadOnlyMemory<int> slotMapping,
        ReadOnlyMemory<int> blockTables, int blockTableWidth)
    {
        int rows = tokens.Length;
        if (positions.Length != rows || sequences.Length != rows || slotMapping.Length != rows)
            throw new ArgumentException($"forward batch: {rows} tokens but {positions.Length} positions, {sequences.Length} sequence ids and {slotMapping.Length} slots");
        if (blockTableWidth < 1 || blockTables.Length % blockTableWidth != 0)
            throw new ArgumentException($"forward batch: block tables of {blockTables.Length} ids are not rows of {blockTableWidth}");
        int count = blockTables.Length / blockTableWidth;
        ReadOnlySpan<int> p = positions.Span, s = sequences.Span;
        for (int r = 0; r < rows; r++)
        {
            if ((uint)s[r] >= (uint)count) throw new ArgumentOutOfRangeException(nameof(sequences), $"forward batch: row {r} names sequence {s[r]} of {count}");
            if (p[r] < 0) throw new ArgumentOutOfRangeException(nameof(positions), $"forward batch: row {r} at position {p[r]}");
        }
        (_tokens, _positions, _sequences, _slots, _blockTables, BlockTableWidth) = (tokens, positions, sequences, slotMapping, blockTables, blockTableWidth);
    }

    public int Rows => _tokens.Length;
    public int Sequences => _blockTables.Length / BlockTableWidth;
    public int BlockTableWidth { get; }

    public ReadOnlySpan<int> Tokens => _tokens.Span;
    public ReadOnlySpan<int> Positions => _positions.Span;
    public ReadOnlySpan<int> SequenceIds => _sequences.Span;
    public ReadOnlySpan<int> SlotMapping => _slots.Span;

    /// <summary>Rows [start, start + count) as a batch of their own, over the same block tables (no copy).</summary>
    public ForwardBatch Slice(int start, int count) =>
        new(_tokens.Slice(start, count), _positions.Slice(start, count), _sequences.Slice(start, count), _slots.Slice(start, count), _blockTables, BlockTableWidth);

    public ReadOnlySpan<int> BlockTable(int sequence) => _blockTables.Span.Slice(sequence * BlockTableWidth, BlockTableWidth);
}
