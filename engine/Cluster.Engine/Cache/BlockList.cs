namespace Cluster.Engine.Cache;

/// <summary>
/// A doubly linked list of block ids threaded through arrays (no node objects): the cached blocks from least
/// to most recently used, with removal of any block in O(1) when a prefix hit takes it back.
/// </summary>
internal sealed class BlockList
{
    private readonly int[] _prev, _next;
    private int _oldest = -1, _newest = -1;

    public BlockList(int blocks)
    {
        _prev = new int[blocks];
        _next = new int[blocks];
    }

    public int Count { get; private set; }

    public void AddNewest(int block)
    {
        _prev[block] = _newest;
        _next[block] = -1;
        if (_newest >= 0) _next[_newest] = block; else _oldest = block;
        _newest = block;
        Count++;
    }

    public void Remove(int block)
    {
        int prev = _prev[block], next = _next[block];
        if (prev >= 0) _next[prev] = next; else _oldest = next;
        if (next >= 0) _prev[next] = prev; else _newest = prev;
        Count--;
    }

    public int RemoveOldest()
    {
        if (Count == 0) throw new InvalidOperationException("no cached block to evict");
        int block = _oldest;
        Remove(block);
        return block;
    }
}
