using Cluster.Engine.Sampling;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>One validated request: the prompt's ids, how many tokens at most, how to sample, which ids end it.</summary>
public sealed record GenerationRequest(string Id, int[] Prompt, int MaxTokens, SamplingOptions Sampling, int[] StopIds);
