namespace Cluster.Engine.Sampling;

/// <summary>A token id with its log-probability under the model's unmodified distribution (softmax of the raw logits).</summary>
public readonly record struct TokenLogprob(int Id, float Logprob);

/// <summary>The chosen token, its log-probability, and the most likely alternatives when they were asked for.</summary>
public readonly record struct SampledToken(int Id, float Logprob, TokenLogprob[] TopLogprobs);
