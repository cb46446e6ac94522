namespace Cluster.Engine.Sampling;

/// <summary>
/// How the next token is chosen. Temperature 0 is greedy. TopK 0 and TopP 1 disable those filters.
/// TopLogprobs asks for that many most likely tokens with their log-probabilities at each step.
/// </summary>
public sealed record SamplingOptions(double Temperature = 0, double TopP = 1, int TopK = 0, ulong Seed = 0, int TopLogprobs = 0)
{
    public void Validate()
    {
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new ArgumentException($"temperature must be a finite number >= 0 (got {Temperature})");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top_p must be in (0, 1] (got {TopP})");
        if (TopK < 0) throw new ArgumentException($"top_k must be >= 0 (got {TopK})");
        if (TopLogprobs < 0) throw new ArgumentException($"top_logprobs must be >= 0 (got {TopLogprobs})");
    }
}
