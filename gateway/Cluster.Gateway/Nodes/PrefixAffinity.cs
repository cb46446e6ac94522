namespace Cluster.Gateway.Nodes;

/// <summary>
/// The block hashes of prompts this gateway sent to one node, least recently sent evicted beyond a bound: what the
/// node's prefix cache probably still holds. Thread-safe.
/// </summary>
public sealed class PrefixAffinity(int capacity)
{
    private readonly Dictionary<ulong, LinkedListNode<ulong>> _index = [];
    // Most recently sent first.
    private readonly LinkedList<ulong> _order = new();
    private readonly Lock _lock = new();

    public int Count
    {
        get { lock (_lock) return _index.Count; }
    }

    /// <summary>How many leading blocks of <paramref name="chain"/> the node is expected to hold.</summary>
    public int CachedBlocks(ReadOnlySpan<ulong> chain)
    {
        lock (_lock)
        {
            int n = 0;
            while (n < chain.Length && _index.ContainsKey(chain[n])) n++;
            return n;
        }
    }

    /// <summary>Notes a prompt sent to the node; its blocks become the most recent.</summary>
    public void Add(ReadOnlySpan<ulong> chain)
    {
        lock (_lock)
        {
            // Last block first, so a prompt's first block is the most recent: evicting from the tail then cuts a
            // chain from its end, as the node's own LRU does, never out of its middle.
            for (int i = chain.Length - 1; i >= 0; i--)
            {
                if (_index.TryGetValue(chain[i], out LinkedListNode<ulong>? node)) _order.Remove(node);
                else
                {
                    if (_index.Count >= capacity)
                    {
                        _index.Remove(_order.Last!.Value);
                        _order.RemoveLast();
                    }
                    node = new LinkedListNode<ulong>(chain[i]);
                    _index.Add(chain[i], node);
                }
                _order.AddFirst(node);
            }
        }
    }
}
