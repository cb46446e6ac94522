using Cluster.Engine.Cache;
using Cluster.Engine.Config;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>One contiguous <see cref="SequenceCache"/> per sequence, sized for its prompt and grown by doubling.</summary>
public sealed class SequenceCachePool(ModelConfig config) : ICachePool
{
    /// <summary>Room reserved up front beyond the prompt, so short generations never reallocate.</summary>
    private const int InitialHeadroom = 256;

    private readonly HashSet<SequenceCache> _live = [];
    private readonly object _gate = new();

    public ILatentCache Rent(int expectedLength)
    {
        var cache = new SequenceCache(config, Math.Min(expectedLength, InitialHeadroom + expectedLength / 2));
        lock (_gate) _live.Add(cache);
        return cache;
    }

    public void Return(ILatentCache cache)
    {
        lock (_gate)
            if (cache is not SequenceCache c || !_live.Remove(c)) throw new InvalidOperationException("returning a cache this pool did not hand out");
    }

    public long BytesInUse
    {
        get
        {
            lock (_gate)
            {
                long total = 0;
                foreach (var c in _live) total += c.Bytes;
                return total;
            }
        }
    }

    public int InUse
    {
        get { lock (_gate) return _live.Count; }
    }
}
