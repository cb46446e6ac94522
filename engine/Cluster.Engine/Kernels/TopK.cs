namespace Cluster.Engine.Kernels;

/// <summary>Largest entries of a vector. Ties go to the lower index, so results are deterministic.</summary>
public static class TopK
{
    public static int Argmax(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty) throw new ArgumentException("argmax of an empty vector");
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    /// <summary>
    /// Writes the indices of the k largest values into <paramref name="indices"/> (length k), largest first.
    /// A size-k min-heap: O(n log k), no allocation.
    /// </summary>
    public static void Select(ReadOnlySpan<float> x, Span<int> indices)
    {
        int k = indices.Length;
        if (k > x.Length) throw new ArgumentException($"top-{k} of {x.Length} values");
        if (k == 0) return;
        // Heap root is the worst kept entry: smallest value, and among equals the highest index.
        for (int i = 0; i < k; i++) { indices[i] = i; SiftUp(x, indices, i); }
        for (int i = k; i < x.Length; i++)
        {
            if (!Better(x, i, indices[0])) continue;
            indices[0] = i;
            SiftDown(x, indices, 0, k);
        }
        // Heap sort in place: repeatedly move the worst to the end, leaving the best first.
        for (int end = k - 1; end > 0; end--)
        {
            (indices[0], indices[end]) = (indices[end], indices[0]);
            SiftDown(x, indices, 0, end);
        }
    }

    private static bool Better(ReadOnlySpan<float> x, int a, int b) => x[a] > x[b] || (x[a] == x[b] && a < b);

    private static void SiftUp(ReadOnlySpan<float> x, Span<int> heap, int i)
    {
        while (i > 0)
        {
            int parent = (i - 1) / 2;
            if (!Better(x, heap[parent], heap[i])) break;
            (heap[parent], heap[i]) = (heap[i], heap[parent]);
            i = parent;
        }
    }

    private static void SiftDown(ReadOnlySpan<float> x, Span<int> heap, int i, int n)
    {
        while (true)
        {
            int l = 2 * i + 1, r = l + 1, worst = i;
            if (l < n && Better(x, heap[worst], heap[l])) worst = l;
            if (r < n && Better(x, heap[worst], heap[r])) worst = r;
            if (worst == i) return;
            (heap[worst], heap[i]) = (heap[i], heap[worst]);
            i = worst;
        }
    }
}
