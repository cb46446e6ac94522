using Cluster.Engine.Config;

namespace Cluster.Engine.Cache;

/// <summary>A contiguous latent cache per layer for one sequence, grown by doubling.</summary>
public sealed class SequenceCache : ILatentCache
{
    private readonly float[][] _layers;
    private readonly int _maxLength;
    private int _capacity, _reserved;

    public SequenceCache(ModelConfig config, int initialCapacity = 64)
    {
        RowSize = config.KvLoraRank + config.QkRopeHeadDim;
        _maxLength = config.MaxPositionEmbeddings;
        _capacity = Math.Max(1, Math.Min(initialCapacity, _maxLength));
        _layers = new float[config.NumHiddenLayers][];
        for (int l = 0; l < _layers.Length; l++) _layers[l] = new float[_capacity * RowSize];
    }

    public int RowSize { get; }
    public int Length { get; private set; }

    /// <summary>Bytes held for this sequence.</summary>
    public long Bytes => (long)_layers.Length * _capacity * RowSize * sizeof(float);

    public void Reserve(int length)
    {
        if (length > _maxLength) throw new ArgumentOutOfRangeException(nameof(length), $"sequence of {length} tokens exceeds max_position_embeddings = {_maxLength}");
        _reserved = Math.Max(_reserved, length);
        if (length <= _capacity) return;
        int capacity = Math.Min(_maxLength, Math.Max(length, _capacity * 2));
        for (int l = 0; l < _layers.Length; l++) Array.Resize(ref _layers[l], capacity * RowSize);
        _capacity = capacity;
    }

    public Span<float> Row(int layer, int position)
    {
        if ((uint)position >= (uint)_reserved) throw new ArgumentOutOfRangeException(nameof(position), $"position {position} not reserved (reserved {_reserved})");
        return _layers[layer].AsSpan(position * RowSize, RowSize);
    }

    public void Write(int layer, int position, ReadOnlySpan<float> row) => row.CopyTo(Row(layer, position));

    public void Read(int layer, int position, Span<float> row) => Row(layer, position).CopyTo(row);

    public void Advance(int count)
    {
        if (Length + count > _reserved) throw new InvalidOperationException($"advancing to {Length + count} positions past the reserved {_reserved}");
        Length += count;
    }
}
