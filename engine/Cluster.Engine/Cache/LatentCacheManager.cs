using Cluster.Engine.Backend;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;

namespace Cluster.Engine.Cache;

/// <summary>
/// The paged latent cache of one node: fixed-size blocks within a byte budget, handed to sequences as
/// <see cref="PagedLatentCache"/>s, and a prefix cache: the full blocks of a published prompt are indexed by
/// the hash chain of their tokens, shared read-only with later sequences whose prompt starts the same way, kept
/// after their sequence ends and evicted least recently used. Thread-safe.
/// </summary>
/// <remarks>
/// Every block is in exactly one state: free, used (held by live sequences, ref-counted) or cached (indexed,
/// no holder, evictable). A started sequence is promised every block it may need, so growing never fails;
/// Available is free + cached less those promises. The manager deals in block ids only: the rows live in the
/// backend's <see cref="ILatentBlocks"/> (<see cref="Memory"/>), which a forward pass addresses through block tables.
/// </remarks>
public sealed class LatentCacheManager
{
    private readonly object _lock = new();
    private readonly int _maxPositions;
    private readonly int[] _refs, _generation, _parent, _parentGeneration;
    private readonly ulong[] _hash;
    private readonly bool[] _indexed;
    private readonly int[]?[] _tokens;
    /// <summary>Freed blocks; blocks [_fresh, TotalBlocks) were never used and are free too.</summary>
    private readonly Stack<int> _free = new();
    private readonly BlockList _cached;
    private readonly Dictionary<ulong, int> _index = [];
    private int _used, _promised, _fresh;
    private long _lookupTokens, _hitTokens;

    /// <summary>The block memory comes from <paramref name="backend"/>, the CPU's by default.</summary>
    public LatentCacheManager(ModelConfig config, LatentCacheOptions options, IBackend? backend = null)
    {
        if (options.BlockSize < 1) throw new ArgumentException($"latent cache block size must be >= 1 (got {options.BlockSize})", nameof(options));
        if (!Enum.IsDefined(options.Format)) throw new ArgumentException($"unknown latent cache format {options.Format}", nameof(options));
        BlockSize = options.BlockSize;
        Format = options.Format;
        Layers = config.NumHiddenLayers;
        RowSize = config.KvLoraRank + config.QkRopeHeadDim;
        _maxPositions = config.MaxPositionEmbeddings;
        BlockBytes = (long)Layers * BlockSize * RowSize * Format.BytesPerValue();
        if (BlockBytes > Array.MaxLength) throw new ArgumentException($"a latent cache block of {BlockSize} tokens takes {BlockBytes} bytes, more than one array holds", nameof(options));
        long blocks = options.BudgetBytes / BlockBytes;
        if (blocks < 1) throw new ArgumentException($"latent cache budget of {options.BudgetBytes} bytes holds no block of {BlockBytes} bytes ({BlockSize} tokens x {Layers} layers)", nameof(options));
        TotalBlocks = (int)Math.Min(blocks, Array.MaxLength);
        Memory = (backend ?? CpuBackend.Default).CreateLatentBlocks(TotalBlocks, BlockSize, Layers, RowSize, Format);
        _refs = new int[TotalBlocks];
        _generation = new int[TotalBlocks];
        _parent = new int[TotalBlocks];
        _parentGeneration = new int[TotalBlocks];
        _hash = new ulong[TotalBlocks];
        _indexed = new bool[TotalBlocks];
        _tokens = new int[TotalBlocks][];
        _cached = new BlockList(TotalBlocks);
    }

    public int BlockSize { get; }
    public int TotalBlocks { get; }
    /// <summary>Bytes of one block: every layer of BlockSize rows.</summary>
    public long BlockBytes { get; }
    public LatentFormat Format { get; }
    public int Layers { get; }
    public int RowSize { get; }
    /// <summary>Where every block's rows are stored.</summary>
    public ILatentBlocks Memory { get; }

    /// <summary>Blocks that hold <paramref name="tokens"/> positions.</summary>
    public int BlocksFor(int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        return (int)(((long)tokens + BlockSize - 1) / BlockSize);
    }

    /// <summary>
    /// Starts a sequence that may grow to <paramref name="maxLength"/> positions, reserving every block it can
    /// need, or returns null when they are not available now. With <paramref name="reusePrefix"/> the longest
    /// published prefix of whole blocks of <paramref name="prompt"/> is shared (tokens compared, not only hashes),
    /// never the whole prompt: at least one token is left to compute, since its logits are needed. The returned
    /// cache's Length and CachedPrefix are the reused tokens.
    /// </summary>
    public PagedLatentCache? TryStart(ReadOnlySpan<int> prompt, int maxLength, bool reusePrefix)
    {
        if (maxLength < 1 || maxLength < prompt.Length)
            throw new ArgumentOutOfRangeException(nameof(maxLength), $"a sequence of at most {maxLength} positions cannot hold a prompt of {prompt.Length} tokens (and needs at least 1)");
        if (maxLength > _maxPositions)
            throw new ArgumentOutOfRangeException(nameof(maxLength), $"sequence of {maxLength} tokens exceeds max_position_embeddings = {_maxPositions}");
        int blocks = BlocksFor(maxLength);
        if (blocks > TotalBlocks)
            throw new ArgumentOutOfRangeException(nameof(maxLength), $"a sequence of {maxLength} tokens needs {blocks} latent cache blocks; the cache has {TotalBlocks}");
        // Whole blocks of the prompt that leave at least one token to compute.
        int candidates = reusePrefix ? Math.Max(0, prompt.Length - 1) / BlockSize : 0;
        int[] hits = new int[candidates];
        lock (_lock)
        {
            int shared = Lookup(prompt, hits), revived = 0;
            for (int i = 0; i < shared; i++) if (_refs[hits[i]] == 0) revived++;
            int own = blocks - shared;
            if (own > FreeBlocks + _cached.Count - revived - _promised) return null;
            for (int i = 0; i < shared; i++)
            {
                int b = hits[i];
                if (_refs[b]++ == 0)
                {
                    _cached.Remove(b);
                    _used++;
                }
            }
            _promised += own;
            if (reusePrefix)
            {
                _lookupTokens += prompt.Length;
                _hitTokens += (long)shared * BlockSize;
            }
            return new PagedLatentCache(this, maxLength, hits.AsSpan(0, shared));
        }
    }

    /// <summary>After every position of <paramref name="prompt"/> is written: indexes its full blocks for later sequences.</summary>
    public void Publish(PagedLatentCache cache, ReadOnlySpan<int> prompt)
    {
        int full = prompt.Length / BlockSize;
        lock (_lock)
        {
            CheckLive(cache);
            if (cache.Length < full * BlockSize)
                throw new InvalidOperationException($"publishing {full} blocks of the prompt needs {full * BlockSize} positions written; the cache has {cache.Length}");
            ulong h = PrefixHash.Start;
            int prev = -1;
            for (int i = 0; i < full; i++)
            {
                ReadOnlySpan<int> tokens = prompt.Slice(i * BlockSize, BlockSize);
                h = PrefixHash.Next(h, tokens);
                int b = cache.Block(i);
                if (_indexed[b])
                {
                    if (_hash[b] != h || !tokens.SequenceEqual(_tokens[b]))
                        throw new ArgumentException($"the prompt differs from the tokens cached in its block {i}", nameof(prompt));
                    prev = b;
                    continue;
                }
                if (_index.TryGetValue(h, out int other))
                {
                    if (Follows(other, prev) && tokens.SequenceEqual(_tokens[other]))
                    {
                        // The same content is already indexed: keep that copy; ours stays private and is freed with the sequence.
                        prev = other;
                        continue;
                    }
                    // An entry under this hash that this chain cannot reach (its parent was evicted) or a true collision:
                    // the newer chain takes its place.
                    Forget(other);
                    if (_refs[other] == 0)
                    {
                        _cached.Remove(other);
                        _free.Push(other);
                    }
                }
                _index[h] = b;
                _indexed[b] = true;
                _hash[b] = h;
                _parent[b] = prev;
                _parentGeneration[b] = prev < 0 ? 0 : _generation[prev];
                tokens.CopyTo(_tokens[b] ??= new int[BlockSize]);
                prev = b;
            }
            cache.Seal(full * BlockSize);
        }
    }

    /// <summary>Ends a sequence: its blocks go back; published ones stay cached until space is needed.</summary>
    public void Release(PagedLatentCache cache)
    {
        lock (_lock)
        {
            CheckLive(cache);
            // Last block first: a chain's tail becomes older than its head, so eviction trims prefixes from the end
            // and a shorter prefix stays reusable.
            for (int i = cache.AllocatedBlocks - 1; i >= 0; i--)
            {
                int b = cache.Block(i);
                if (--_refs[b] > 0) continue;
                _used--;
                if (_indexed[b]) _cached.AddNewest(b);
                else _free.Push(b);
            }
            _promised -= cache.PendingBlocks;
            cache.MarkReleased();
        }
    }

    public LatentCacheStats Stats()
    {
        lock (_lock)
            return new LatentCacheStats(TotalBlocks, _used, _cached.Count, FreeBlocks + _cached.Count - _promised, _lookupTokens, _hitTokens);
    }

    /// <summary>Takes the promised blocks of <paramref name="cache"/> up to <paramref name="blocks"/> in its table.</summary>
    internal void Allocate(PagedLatentCache cache, int blocks)
    {
        lock (_lock)
        {
            CheckLive(cache);
            while (cache.AllocatedBlocks < blocks)
            {
                int b = Take();
                _refs[b] = 1;
                _used++;
                _promised--;
                cache.Attach(b);
            }
        }
    }

    /// <summary>A free block, else the least recently used cached one; its old content is gone from then on.</summary>
    private int Take()
    {
        int b;
        if (_free.Count > 0) b = _free.Pop();
        else if (_fresh < TotalBlocks) b = _fresh++;
        else
        {
            b = _cached.RemoveOldest();
            Forget(b);
        }
        _generation[b]++;
        return b;
    }

    /// <summary>Fills <paramref name="hits"/> with the indexed blocks of the prompt's leading whole blocks; returns how many.</summary>
    private int Lookup(ReadOnlySpan<int> prompt, int[] hits)
    {
        ulong h = PrefixHash.Start;
        int prev = -1;
        for (int i = 0; i < hits.Length; i++)
        {
            ReadOnlySpan<int> tokens = prompt.Slice(i * BlockSize, BlockSize);
            h = PrefixHash.Next(h, tokens);
            if (!_index.TryGetValue(h, out int b) || !Follows(b, prev) || !tokens.SequenceEqual(_tokens[b])) return i;
            hits[i] = prev = b;
        }
        return hits.Length;
    }

    /// <summary>Whether indexed <paramref name="block"/> was published right after <paramref name="prev"/>'s current content.</summary>
    private bool Follows(int block, int prev) =>
        _parent[block] == prev && (prev < 0 || _parentGeneration[block] == _generation[prev]);

    /// <summary>Removes an indexed block from the index (a used one is then freed with its last holder).</summary>
    private void Forget(int block)
    {
        _index.Remove(_hash[block]);
        _indexed[block] = false;
    }

    private int FreeBlocks => _free.Count + TotalBlocks - _fresh;

    private void CheckLive(PagedLatentCache cache)
    {
        if (!ReferenceEquals(cache.Manager, this)) throw new InvalidOperationException("the latent cache belongs to another manager");
        if (cache.Released) throw new InvalidOperationException("the latent cache was already released");
    }
}
