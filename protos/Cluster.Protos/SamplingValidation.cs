using System.Globalization;

namespace Cluster.Protos.V1;

/// <summary>
/// The one set of ranges of a request's sampling parameters (OpenAI's), called by every door that takes them: the
/// gateway's OpenAI JSON, its cluster.v1.Inference gRPC and the attention node's Generate and Prefill. Each check
/// throws <see cref="InvalidFieldException"/> naming the field as the door spells it.
/// </summary>
public static class SamplingValidation
{
    public const float MaxTemperature = 2;
    public const int MaxStops = 4;
    public const int MaxTopLogprobs = 20;

    /// <summary>
    /// Checks every field of <paramref name="sampling"/>; <paramref name="prefix"/> goes before each field's name
    /// ("sampling." on gRPC, "" on the JSON body, whose fields sit at the top).
    /// </summary>
    public static void Validate(SamplingParams sampling, int vocabSize, string prefix)
    {
        if (sampling.HasMaxTokens) MaxTokens(sampling.MaxTokens, prefix + "max_tokens");
        Temperature(sampling.Temperature, prefix + "temperature");
        if (sampling.HasTopP) TopP(sampling.TopP, prefix + "top_p");
        TopK(sampling.TopK, vocabSize, prefix + "top_k");
        Stops(sampling.Stop, prefix + "stop");
    }

    /// <summary>A completion budget, when one is given: at least 1 token, at most what an int counts.</summary>
    public static void MaxTokens(long value, string field)
    {
        if (value < 1 || value > int.MaxValue) throw Out(field, $"must be between 1 and {int.MaxValue}", value);
    }

    /// <summary>0 (greedy) to <see cref="MaxTemperature"/>.</summary>
    public static void Temperature(double value, string field)
    {
        if (!(value >= 0 && value <= MaxTemperature)) throw Out(field, $"must be between 0 and {MaxTemperature}", value);
    }

    /// <summary>Greater than 0 (no token would be kept) and at most 1.</summary>
    public static void TopP(double value, string field)
    {
        if (!(value > 0 && value <= 1)) throw Out(field, "must be greater than 0 and at most 1", value);
    }

    /// <summary>0 (off) to the vocabulary size.</summary>
    public static void TopK(long value, int vocabSize, string field)
    {
        if (value < 0 || value > vocabSize) throw Out(field, $"must be between 0 (off) and the vocabulary size {vocabSize}", value);
    }

    /// <summary>At most <see cref="MaxStops"/> strings, none empty.</summary>
    public static void Stops(IReadOnlyList<string> stops, string field)
    {
        if (stops.Count > MaxStops) throw new InvalidFieldException(field, $"{field} may hold at most {MaxStops} strings (got {stops.Count})");
        for (int i = 0; i < stops.Count; i++)
            if (stops[i].Length == 0) throw new InvalidFieldException(field, $"{field} must hold non-empty strings ({field}[{i}] is empty)");
    }

    /// <summary>Alternatives reported per token: 0 to <see cref="MaxTopLogprobs"/>.</summary>
    public static void TopLogprobs(long value, string field)
    {
        if (value < 0 || value > MaxTopLogprobs) throw Out(field, $"must be between 0 and {MaxTopLogprobs}", value);
    }

    private static InvalidFieldException Out(string field, string range, double got) =>
        new(field, $"{field} {range} (got {got.ToString(CultureInfo.InvariantCulture)})");
}
