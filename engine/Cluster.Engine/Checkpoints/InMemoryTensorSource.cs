using Cluster.Engine.Tensors;

namespace Cluster.Engine.Checkpoints;

/// <summary>Weights held in native memory by name: synthetic models and tests.</summary>
public sealed class InMemoryTensorSource : ITensorSource
{
    private readonly Dictionary<string, Weight> _weights = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];

    public InMemoryTensorSource() { }

    public InMemoryTensorSource(IEnumerable<Weight> weights)
    {
        foreach (Weight w in weights) Add(w);
    }

    /// <summary>Adds a weight under its own name (its scales travel with it).</summary>
    public void Add(Weight weight)
    {
        if (!_weights.TryAdd(weight.Name, weight)) throw new ArgumentException($"tensor {weight.Name} added twice");
        _order.Add(weight.Name);
    }

    public bool Contains(string name) => _weights.ContainsKey(name);

    public Weight Get(string name) =>
        _weights.TryGetValue(name, out Weight? w) ? w : throw new InvalidDataException($"missing tensor {name}");

    /// <summary>The names in the order they were added.</summary>
    public IEnumerable<string> Names => _order;

    /// <summary>Bytes of all weights including FP8 scales.</summary>
    public long TotalBytes
    {
        get
        {
            long n = 0;
            foreach (Weight w in _weights.Values) n += w.TotalBytes;
            return n;
        }
    }
}
