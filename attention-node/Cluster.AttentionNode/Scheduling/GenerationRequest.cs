using Cluster.Engine.Sampling;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// One validated request: the prompt's ids, how many tokens at most, how to sample, which ids end it, and how many
/// of the prompt's last ids were sampled for it elsewhere (a migrated request, whose sampler skips their draws).
/// </summary>
public sealed record GenerationRequest(string Id, int[] Prompt, int MaxTokens, SamplingOptions Sampling, int[] StopIds, int SampledBefore = 0);
