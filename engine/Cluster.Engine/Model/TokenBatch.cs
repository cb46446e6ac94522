using Cluster.Engine.Cache;

namespace Cluster.Engine.Model;

/// <summary>
/// The token rows of one forward pass: for each, its sequence's latent cache and its position there. A prefill
/// is one sequence at consecutive positions; a decode step is one row per running sequence. Reused across steps.
/// </summary>
public sealed class TokenBatch
{
    private ILatentCache[] _caches = new ILatentCache[16];
    private int[] _positions = new int[16];

    public int Count { get; private set; }

    public ILatentCache Cache(int row) => _caches[row];
    public int Position(int row) => _positions[row];

    public void Clear()
    {
        Array.Clear(_caches, 0, Count);
        Count = 0;
    }

    /// <summary>Adds a row; the position must be reserved in the cache, and rows of one sequence must be in order.</summary>
    public void Add(ILatentCache cache, int position)
    {
        if (Count == _caches.Length)
        {
            Array.Resize(ref _caches, Count * 2);
            Array.Resize(ref _positions, Count * 2);
        }
        _caches[Count] = cache;
        _positions[Count++] = position;
    }
}
