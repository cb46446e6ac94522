using System.Text;

namespace Cluster.Tokenizer;

/// <summary>Text of a reasoning model's output, split into its reasoning (inside &lt;think&gt;...&lt;/think&gt;) and its answer.</summary>
public readonly record struct ReasoningSplit(string Reasoning, string Answer);

/// <summary>
/// Splits <c>&lt;think&gt;...&lt;/think&gt;</c> output into reasoning and answer, whole or while streaming. Output that
/// opens with &lt;think&gt; (or every output, when the prompt already ended inside &lt;think&gt;) is reasoning up to the
/// first &lt;/think&gt; and answer after it; output that does not open with &lt;think&gt; is all answer. Text is kept as
/// the model wrote it (no trimming). Streaming gives exactly the whole-string split, wherever chunks break the tags.
/// One instance per stream; not thread-safe.
/// </summary>
public sealed class ReasoningParser(bool startsInReasoning = false)
{
    public const string StartTag = "<think>", EndTag = "</think>";

    private enum State { Opening, Reasoning, Answer }

    private State _state = startsInReasoning ? State.Reasoning : State.Opening;
    private readonly StringBuilder _held = new(); // text that may still turn out to be part of a tag

    /// <summary>Splits a whole output.</summary>
    public static ReasoningSplit Split(string text, bool startsInReasoning = false)
    {
        var parser = new ReasoningParser(startsInReasoning);
        ReasoningSplit a = parser.Push(text), b = parser.Flush();
        return new ReasoningSplit(a.Reasoning + b.Reasoning, a.Answer + b.Answer);
    }

    /// <summary>The reasoning and answer text this chunk makes certain.</summary>
    public ReasoningSplit Push(string chunk)
    {
        _held.Append(chunk);
        string reasoning = "";
        if (_state == State.Opening)
        {
            string held = _held.ToString();
            if (held.Length < StartTag.Length && StartTag.StartsWith(held, StringComparison.Ordinal)) return new ReasoningSplit("", "");
            _held.Clear();
            if (held.StartsWith(StartTag, StringComparison.Ordinal))
            {
                _state = State.Reasoning;
                _held.Append(held, StartTag.Length, held.Length - StartTag.Length);
            }
            else
            {
                _state = State.Answer;
                _held.Append(held);
            }
        }
        if (_state == State.Reasoning)
        {
            string held = _held.ToString();
            int end = held.IndexOf(EndTag, StringComparison.Ordinal);
            _held.Clear();
            if (end < 0)
            {
                int keep = PartialTagLength(held);
                reasoning = held[..^keep];
                _held.Append(held, held.Length - keep, keep);
                return new ReasoningSplit(reasoning, "");
            }
            reasoning = held[..end];
            _state = State.Answer;
            _held.Append(held, end + EndTag.Length, held.Length - end - EndTag.Length);
        }
        string answer = _held.ToString();
        _held.Clear();
        return new ReasoningSplit(reasoning, answer);
    }

    /// <summary>Ends the stream: held text that never completed a tag is released as what it was read as.</summary>
    public ReasoningSplit Flush()
    {
        string held = _held.ToString();
        _held.Clear();
        return _state == State.Reasoning ? new ReasoningSplit(held, "") : new ReasoningSplit("", held);
    }

    /// <summary>Length of the longest suffix of <paramref name="text"/> that is a proper prefix of the end tag.</summary>
    private static int PartialTagLength(string text)
    {
        for (int n = Math.Min(EndTag.Length - 1, text.Length); n > 0; n--)
            if (text.AsSpan(text.Length - n).SequenceEqual(EndTag.AsSpan(0, n))) return n;
        return 0;
    }
}
