namespace Cluster.Gateway.Generation;

/// <summary>One alternative at a position: a token and its log-probability.</summary>
public readonly record struct TokenAlternative(int Id, string Token, float Logprob);

/// <summary>A generated token with its log-probability and the most likely alternatives at its position.</summary>
public sealed record TokenLogprob(int Id, string Token, float Logprob, IReadOnlyList<TokenAlternative> Top);

/// <summary>
/// Output made certain by one node event: answer text, reasoning text, the tokens whose text it covers and, when
/// asked for, their logprobs. Any part may be empty.
/// </summary>
public sealed record OutputDelta(string Text, string Reasoning, IReadOnlyList<int> TokenIds, IReadOnlyList<TokenLogprob>? Logprobs)
{
    public static readonly OutputDelta Empty = new("", "", [], null);

    public bool IsEmpty => Text.Length == 0 && Reasoning.Length == 0 && TokenIds.Count == 0;
}
