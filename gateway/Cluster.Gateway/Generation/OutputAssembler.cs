using Cluster.Protos.V1;
using Cluster.Tokenizer;

namespace Cluster.Gateway.Generation;

/// <summary>
/// Turns the node's token events into output: whole UTF-8 characters (streaming detokenizer), cut at the first stop
/// string (text that may still start one is held back), split into reasoning and answer. A token is released
/// together with the text it produced, so token ids and logprobs line up with the text shown; a token whose text
/// straddles a stop string is kept, tokens after it are dropped. One instance per request; not thread-safe.
/// </summary>
public sealed class OutputAssembler
{
    private readonly ServedModel _model;
    private readonly CompletionRequest _request;
    private readonly StreamingDetokenizer _detokenizer;
    private readonly StopMatcher _stops;
    private readonly ReasoningParser? _reasoning;
    private readonly Queue<(int Id, TokenLogprob? Logprob, long End)> _pending = new();
    private long _producedChars; // text the detokenizer has produced so far
    private long _releasedChars; // of which released (stop strings excluded)
    private long _releasedTokenEnd; // where the text of the last released token ends

    public OutputAssembler(ServedModel model, CompletionRequest request)
    {
        _model = model;
        _request = request;
        _detokenizer = new StreamingDetokenizer(model.Tokenizer, skipSpecialTokens: true);
        _stops = new StopMatcher(request.Stops);
        if (request.SplitReasoning) _reasoning = new ReasoningParser(request.StartsInReasoning);
    }

    public int PromptTokens { get; private set; }
    public int CachedPromptTokens { get; private set; }
    public int CompletionTokens { get; private set; }
    /// <summary>"stop" or "length" once the output is complete; null before.</summary>
    public string? FinishReason { get; private set; }

    /// <summary>What one node event makes certain. After the event that finishes the output, everything is released.</summary>
    public OutputDelta Push(TokenEvent e)
    {
        if (FinishReason is not null) throw new InvalidOperationException("the output is already complete");
        if (CompletionTokens == 0)
        {
            PromptTokens = (int)e.PromptTokens;
            CachedPromptTokens = (int)e.CachedPromptTokens;
        }
        CompletionTokens++;
        int id = (int)e.TokenId;
        // A stop or EOS token ends the output without adding text of its own.
        bool stopToken = e.FinishReason == "stop";
        string piece = stopToken || !_model.HasText(id) ? "" : _detokenizer.Push(id);
        _producedChars += piece.Length;
        _pending.Enqueue((id, _request.Logprobs ? Logprob(e) : null, _producedChars));
        string text = _stops.Push(piece);
        if (!_stops.Stopped && e.FinishReason.Length > 0)
        {
            text += _stops.Push(_detokenizer.Flush());
            text += _stops.Flush();
        }
        if (_stops.Stopped) FinishReason = "stop";
        else if (e.FinishReason.Length > 0) FinishReason = e.FinishReason is "stop" or "length" ? e.FinishReason : "stop";
        return Release(text);
    }

    private OutputDelta Release(string text)
    {
        _releasedChars += text.Length;
        var ids = new List<int>();
        List<TokenLogprob>? logprobs = _request.Logprobs ? [] : null;
        while (_pending.TryPeek(out var t))
        {
            // Tokens whose text is all released; once finished, also the one a stop string cut through.
            bool released = t.End <= _releasedChars || (FinishReason is not null && _releasedTokenEnd < _releasedChars);
            if (!released) break;
            _pending.Dequeue();
            _releasedTokenEnd = t.End;
            ids.Add(t.Id);
            if (t.Logprob is not null) logprobs!.Add(t.Logprob);
        }
        if (FinishReason is not null) _pending.Clear();

        string reasoning = "", answer = text;
        if (_reasoning is not null)
        {
            ReasoningSplit split = _reasoning.Push(text);
            if (FinishReason is not null)
            {
                ReasoningSplit rest = _reasoning.Flush();
                split = new ReasoningSplit(split.Reasoning + rest.Reasoning, split.Answer + rest.Answer);
            }
            (reasoning, answer) = (split.Reasoning, split.Answer);
        }
        if (answer.Length == 0 && reasoning.Length == 0 && ids.Count == 0) return OutputDelta.Empty;
        return new OutputDelta(answer, reasoning, ids, logprobs);
    }

    private TokenLogprob Logprob(TokenEvent e)
    {
        var top = new TokenAlternative[e.TopLogprobs.Count];
        for (int i = 0; i < top.Length; i++)
        {
            TopLogprob t = e.TopLogprobs[i];
            top[i] = new TokenAlternative((int)t.TokenId, _model.TokenText((int)t.TokenId), t.Logprob);
        }
        return new TokenLogprob((int)e.TokenId, _model.TokenText((int)e.TokenId), e.Logprob, top);
    }
}
