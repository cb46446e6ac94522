using Cluster.Engine.Backend;
using Cluster.Engine.Cache;

namespace Cluster.Engine.Model;

/// <summary>
/// The token rows of one forward pass as sequences' caches see them: for each, its sequence's latent cache and
/// its position there. A prefill is one sequence at consecutive positions; a decode step is one row per running
/// sequence. <see cref="Prepare"/> turns it into the plain arrays of a <see cref="ForwardBatch"/>. Reused across
/// steps: the arrays are its own, valid until the next Prepare.
/// </summary>
public sealed class TokenBatch
{
    private ILatentCache[] _caches = new ILatentCache[16];
    private int[] _positions = new int[16];
    private int[] _tokens = [], _sequences = [], _slots = [], _tables = [];
    private ILatentCache[] _distinct = [];
    private readonly CacheBlocks _own = new();

    public int Count { get; private set; }

    public void Clear()
    {
        Array.Clear(_caches, 0, Count);
        Array.Clear(_distinct);
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

    /// <summary>
    /// The rows with <paramref name="tokens"/> as a <see cref="ForwardBatch"/>, and the memory its slots address:
    /// when every sequence is a <see cref="PagedLatentCache"/> of one manager, that manager's block memory and the
    /// sequences' own block tables (each written position checked reserved and not shared); otherwise each
    /// sequence's cache as one block of its own.
    /// </summary>
    public ForwardBatch Prepare(ReadOnlySpan<int> tokens, out ILatentMemory memory)
    {
        int n = Count;
        if (tokens.Length != n) throw new ArgumentException($"{tokens.Length} tokens for {n} batch rows");
        Grow(ref _tokens, n);
        Grow(ref _sequences, n);
        Grow(ref _slots, n);
        if (_distinct.Length < n) _distinct = new ILatentCache[Math.Max(n, 2 * _distinct.Length)];
        tokens.CopyTo(_tokens);

        int sequences = 0, furthest = 0;
        LatentCacheManager? manager = n > 0 ? (_caches[0] as PagedLatentCache)?.Manager : null;
        for (int r = 0; r < n; r++)
        {
            ILatentCache cache = _caches[r];
            int s = r > 0 && ReferenceEquals(cache, _caches[r - 1]) ? _sequences[r - 1] : IndexOf(cache, sequences);
            if (s == sequences) _distinct[sequences++] = cache;
            _sequences[r] = s;
            furthest = Math.Max(furthest, _positions[r] + 1);
            if (manager is not null && (cache is not PagedLatentCache paged || !ReferenceEquals(paged.Manager, manager))) manager = null;
        }

        int width;
        if (manager is not null)
        {
            width = 1;
            for (int s = 0; s < sequences; s++) width = Math.Max(width, ((PagedLatentCache)_distinct[s]).BlockTable.Length);
            Grow(ref _tables, sequences * width);
            for (int s = 0; s < sequences; s++)
            {
                Span<int> table = _tables.AsSpan(s * width, width);
                ReadOnlySpan<int> own = ((PagedLatentCache)_distinct[s]).BlockTable;
                own.CopyTo(table);
                table[own.Length..].Fill(-1);
            }
            for (int r = 0; r < n; r++) _slots[r] = ((PagedLatentCache)_caches[r]).WritableSlot(_positions[r]);
            memory = manager.Memory;
        }
        else
        {
            if ((long)sequences * furthest > int.MaxValue) throw new ArgumentException($"{sequences} sequences up to position {furthest} do not fit one batch");
            width = 1;
            Grow(ref _tables, sequences);
            for (int s = 0; s < sequences; s++) _tables[s] = s;
            for (int r = 0; r < n; r++) _slots[r] = _sequences[r] * furthest + _positions[r];
            _own.Set(_distinct, furthest);
            memory = _own;
        }
        return new ForwardBatch(_tokens.AsMemory(0, n), _positions.AsMemory(0, n), _sequences.AsMemory(0, n), _slots.AsMemory(0, n),
            _tables.AsMemory(0, sequences * width), width);
    }

    private int IndexOf(ILatentCache cache, int sequences)
    {
        for (int s = 0; s < sequences; s++) if (ReferenceEquals(_distinct[s], cache)) return s;
        return sequences;
    }

    private static void Grow(ref int[] array, int length)
    {
        if (array.Length < length) array = new int[Math.Max(length, 2 * array.Length)];
    }
}
