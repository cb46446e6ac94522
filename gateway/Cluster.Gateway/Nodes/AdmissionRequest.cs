namespace Cluster.Gateway.Nodes;

/// <summary>What admission knows of one request: its prompt and completion budget, and the prompt's hash chains.</summary>
public sealed class AdmissionRequest(IReadOnlyList<uint> prompt, int maxTokens)
{
    // Usually every node has the same block size, so one chain is computed per request.
    private readonly List<(int BlockSize, ulong[] Chain)> _chains = new(1);

    public IReadOnlyList<uint> Prompt { get; } = prompt;
    public int MaxTokens { get; } = maxTokens;
    /// <summary>The most tokens the request can hold in a node's cache.</summary>
    public int ContextTokens => Prompt.Count + MaxTokens;

    public ulong[] Chain(int blockSize)
    {
        foreach (var (size, chain) in _chains)
            if (size == blockSize) return chain;
        ulong[] computed = PrefixHashChain.Compute(Prompt, blockSize);
        _chains.Add((blockSize, computed));
        return computed;
    }
}
