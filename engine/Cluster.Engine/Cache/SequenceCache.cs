using Cluster.Engine.Config;

namespace Cluster.Engine.Cache;

/// <summary>
/// A contiguous latent cache per layer for one sequence, grown by doubling. F32 by default; BF16 rounds rows
/// exactly as the paged cache of a serving node does, so a single-process run can reproduce it bit for bit.
/// </summary>
public sealed class SequenceCache : ILatentCache
{
    private readonly byte[][] _layers;
    private readonly int _maxLength, _bytesPerRow;
    private int _capacity, _reserved;

    public SequenceCache(ModelConfig config, int initialCapacity = 64, LatentFormat format = LatentFormat.F32)
    {
        if (!Enum.IsDefined(format)) throw new ArgumentException($"unknown latent cache format {format}", nameof(format));
        RowSize = config.KvLoraRank + config.QkRopeHeadDim;
        Format = format;
        _bytesPerRow = RowSize * format.BytesPerValue();
        _maxLength = config.MaxPositionEmbeddings;
        _capacity = Math.Max(1, Math.Min(initialCapacity, _maxLength));
        _layers = new byte[config.NumHiddenLayers][];
        for (int l = 0; l < _layers.Length; l++) _layers[l] = new byte[_capacity * _bytesPerRow];
    }

    public int RowSize { get; }
    public int Length { get; private set; }
    public LatentFormat Format { get; }

    /// <summary>Bytes held for this sequence.</summary>
    public long Bytes => (long)_layers.Length * _capacity * _bytesPerRow;

    public void Reserve(int length)
    {
        if (length > _maxLength) throw new ArgumentOutOfRangeException(nameof(length), $"sequence of {length} tokens exceeds max_position_embeddings = {_maxLength}");
        _reserved = Math.Max(_reserved, length);
        if (length <= _capacity) return;
        int capacity = Math.Min(_maxLength, Math.Max(length, _capacity * 2));
        for (int l = 0; l < _layers.Length; l++) Array.Resize(ref _layers[l], capacity * _bytesPerRow);
        _capacity = capacity;
    }

    public void Write(int layer, int position, ReadOnlySpan<float> row)
    {
        if (row.Length != RowSize) throw new ArgumentException($"latent row of {row.Length} values, expected {RowSize}", nameof(row));
        LatentRows.Store(Format, row, Stored(layer, position, 1));
    }

    public void Read(int layer, int position, Span<float> row) => LatentRows.Load(Format, Stored(layer, position, 1), row[..RowSize]);

    public void ReadRows(int layer, int start, int count, Span<float> rows)
    {
        if (rows.Length < (long)count * RowSize) throw new ArgumentException($"{rows.Length} values for {count} rows of {RowSize}", nameof(rows));
        LatentRows.Load(Format, Stored(layer, start, count), rows[..(count * RowSize)]);
    }

    public void Advance(int count)
    {
        if (Length + count > _reserved) throw new InvalidOperationException($"advancing to {Length + count} positions past the reserved {_reserved}");
        Length += count;
    }

    /// <summary>The stored bytes of rows [position, position + count) of one layer.</summary>
    private Span<byte> Stored(int layer, int position, int count)
    {
        if (position < 0 || count < 0 || position > _reserved - count)
            throw new ArgumentOutOfRangeException(nameof(position), $"positions [{position}, {position + count}) not reserved (reserved {_reserved})");
        return _layers[layer].AsSpan(position * _bytesPerRow, count * _bytesPerRow);
    }
}
