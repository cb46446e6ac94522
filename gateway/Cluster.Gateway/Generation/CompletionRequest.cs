using Cluster.Protos.V1;

namespace Cluster.Gateway.Generation;

/// <summary>
/// One validated request, whichever API it came through: prompt ids, how to sample (the protos' one
/// <see cref="SamplingParams"/>, checked by <see cref="SamplingValidation"/>) and how to shape the output.
/// </summary>
public sealed record CompletionRequest
{
    public required int[] PromptIds { get; init; }
    /// <summary>Valid, with max_tokens always set: the door resolves the default against the context.</summary>
    public required SamplingParams Sampling { get; init; }
    public int MaxTokens => (int)Sampling.MaxTokens;
    /// <summary>Matched on the text here; the node is not told them.</summary>
    public IReadOnlyList<string> Stops => Sampling.Stop;
    /// <summary>Report each token's logprob, with this many alternatives.</summary>
    public bool Logprobs { get; init; }
    public int TopLogprobs { get; init; }
    /// <summary>Chat: split &lt;think&gt;...&lt;/think&gt; off as reasoning text.</summary>
    public bool SplitReasoning { get; init; }
    /// <summary>The rendered prompt already opened &lt;think&gt;, so the output starts inside the reasoning.</summary>
    public bool StartsInReasoning { get; init; }
}
