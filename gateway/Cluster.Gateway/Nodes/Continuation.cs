using Cluster.Protos.V1;

namespace Cluster.Gateway.Nodes;

/// <summary>
/// The request that continues a stream on another node, as NVIDIA Dynamo migrates one: the original prompt with the
/// tokens generated so far appended, the completion budget that is left, and the count of sampled tokens, so the new
/// node's sampler skips their draws and a seeded request continues its sequence. Same request id, for the logs.
/// </summary>
public static class Continuation
{
    public static TokenGenerateRequest Of(TokenGenerateRequest original, IReadOnlyList<uint> generated)
    {
        TokenGenerateRequest next = original.Clone();
        foreach (uint id in generated) next.PromptTokenIds.Add(id);
        next.Sampling.MaxTokens = original.Sampling.MaxTokens - (uint)generated.Count;
        next.SampledTokens = original.SampledTokens + (uint)generated.Count;
        // The placement names a prefill node again, if any.
        next.PrefillNode = "";
        return next;
    }
}
