using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;

namespace Cluster.Tokenizer;

/// <summary>
/// Byte-level BPE over one pre-token: start from one symbol per UTF-8 byte and apply the lowest-ranked merge
/// until none applies (ties go to the leftmost pair, as Hugging Face's heap does). Results are cached per pre-token,
/// since natural text repeats a small set of words.
/// </summary>
internal sealed class BytePairEncoder
{
    private const int CacheCapacity = 200_000;
    private const int MaxCachedLength = 64;
    private const int StackBytes = 256;

    private readonly int[] _byteToId;
    private readonly Dictionary<long, long> _merges; // (left id, right id) -> (rank, merged id)
    private readonly Dictionary<string, int>? _wholeWords; // set when merges are skipped for words already in the vocabulary
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;
    private int _cacheCount;

    public BytePairEncoder(int[] byteToId, Dictionary<long, long> merges, Dictionary<string, int>? wholeWords)
    {
        _byteToId = byteToId;
        _merges = merges;
        _wholeWords = wholeWords;
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>Hashes a pair key well: long's own hash (high ^ low word) would send every pair of small ids to a few
    /// buckets' worth of values, since both ids are below 2^17.</summary>
    public sealed class PairComparer : IEqualityComparer<long>
    {
        public static readonly PairComparer Instance = new();

        public bool Equals(long x, long y) => x == y;

        public int GetHashCode(long key) => (int)(((ulong)key * 0x9E3779B97F4A7C15UL) >> 32);
    }

    public void Encode(ReadOnlySpan<char> word, List<int> output)
    {
        if (_cacheBySpan.TryGetValue(word, out int[]? cached))
        {
            output.AddRange(cached);
            return;
        }
        int start = output.Count;
        EncodeUncached(word, output);
        if (word.Length > MaxCachedLength) return;
        // A full cache is dropped rather than evicted entry by entry: cheap, bounded, and refills with the hot words.
        if (Interlocked.Increment(ref _cacheCount) > CacheCapacity)
        {
            _cache.Clear();
            Interlocked.Exchange(ref _cacheCount, 0);
        }
        _cache.TryAdd(word.ToString(), CollectionsMarshal.AsSpan(output)[start..].ToArray());
    }

    private void EncodeUncached(ReadOnlySpan<char> word, List<int> output)
    {
        int n = Encoding.UTF8.GetByteCount(word);
        byte[]? rented = n > StackBytes ? ArrayPool<byte>.Shared.Rent(n) : null;
        Span<byte> bytes = rented is null ? stackalloc byte[StackBytes] : rented;
        bytes = bytes[..Encoding.UTF8.GetBytes(word, bytes)];
        try
        {
            if (_wholeWords is not null && TryWholeWord(bytes, output)) return;
            Merge(bytes, output);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private bool TryWholeWord(ReadOnlySpan<byte> bytes, List<int> output)
    {
        Span<char> chars = bytes.Length <= StackBytes ? stackalloc char[bytes.Length] : new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteLevel.ByteToChar[bytes[i]];
        if (!_wholeWords!.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(chars, out int id)) return false;
        output.Add(id);
        return true;
    }

    private void Merge(ReadOnlySpan<byte> bytes, List<int> output)
    {
        int n = bytes.Length;
        if (n == 0) return;
        int[] pool = ArrayPool<int>.Shared.Rent(3 * n);
        long[] heapArray = ArrayPool<long>.Shared.Rent(3 * n);
        try
        {
            Span<int> ids = pool.AsSpan(0, n), prev = pool.AsSpan(n, n), next = pool.AsSpan(2 * n, n);
            var heap = new MinHeap(heapArray);
            for (int i = 0; i < n; i++)
            {
                ids[i] = _byteToId[bytes[i]];
                prev[i] = i - 1;
                next[i] = i + 1 < n ? i + 1 : -1;
            }
            for (int i = 0; i + 1 < n; i++) PushPair(ref heap, ids, i, i + 1);

            while (heap.Count > 0)
            {
                long top = heap.Pop();
                int rank = (int)(top >> 32), pos = (int)top;
                int right = next[pos];
                // Entries go stale when a neighbour merged first; the pair now at pos must still be this rank's pair.
                if (ids[pos] < 0 || right < 0 || !_merges.TryGetValue(PairKey(ids[pos], ids[right]), out long m) || (int)(m >> 32) != rank)
                    continue;
                ids[pos] = (int)m;
                ids[right] = -1;
                next[pos] = next[right];
                if (next[pos] >= 0) prev[next[pos]] = pos;
                if (prev[pos] >= 0) PushPair(ref heap, ids, prev[pos], pos);
                if (next[pos] >= 0) PushPair(ref heap, ids, pos, next[pos]);
            }
            for (int i = 0; i >= 0; i = next[i]) output.Add(ids[i]);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(pool);
            ArrayPool<long>.Shared.Return(heapArray);
        }
    }

    private void PushPair(ref MinHeap heap, Span<int> ids, int left, int right)
    {
        if (_merges.TryGetValue(PairKey(ids[left], ids[right]), out long m))
            heap.Push((m & ~0xFFFFFFFFL) | (uint)left);
    }

    /// <summary>Binary min-heap of (rank, position) packed into longs, so equal ranks pop leftmost first.</summary>
    private struct MinHeap(long[] items)
    {
        public int Count;

        public void Push(long item)
        {
            int i = Count++;
            while (i > 0)
            {
                int parent = (i - 1) >> 1;
                if (items[parent] <= item) break;
                items[i] = items[parent];
                i = parent;
            }
            items[i] = item;
        }

        public long Pop()
        {
            long top = items[0];
            long last = items[--Count];
            int i = 0;
            while (true)
            {
                int child = 2 * i + 1;
                if (child >= Count) break;
                if (child + 1 < Count && items[child + 1] < items[child]) child++;
                if (items[child] >= last) break;
                items[i] = items[child];
                i = child;
            }
            items[i] = last;
            return top;
        }
    }
}
