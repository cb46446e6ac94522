namespace Cluster.Gateway.Generation;

/// <summary>One validated request, whichever API it came through: prompt ids, sampling and how to shape the output.</summary>
public sealed record GenerationRequest
{
    public required int[] PromptIds { get; init; }
    public required int MaxTokens { get; init; }
    /// <summary>0 is greedy.</summary>
    public float Temperature { get; init; }
    /// <summary>1 is off.</summary>
    public float TopP { get; init; } = 1;
    /// <summary>0 is off.</summary>
    public int TopK { get; init; }
    public ulong? Seed { get; init; }
    public IReadOnlyList<string> Stops { get; init; } = [];
    /// <summary>Report each token's logprob, with this many alternatives.</summary>
    public bool Logprobs { get; init; }
    public int TopLogprobs { get; init; }
    /// <summary>Chat: split &lt;think&gt;...&lt;/think&gt; off as reasoning text.</summary>
    public bool SplitReasoning { get; init; }
    /// <summary>The rendered prompt already opened &lt;think&gt;, so the output starts inside the reasoning.</summary>
    public bool StartsInReasoning { get; init; }
}
