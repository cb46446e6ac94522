using System.Text;
using System.Text.Json;
using Cluster.Gateway.Generation;
using Microsoft.AspNetCore.Http;

namespace Cluster.Gateway.OpenAi;

/// <summary>Legacy completions: <c>text_completion</c> objects, whole or streamed, with the legacy logprobs arrays.</summary>
public sealed class CompletionFormat(string model, bool logprobs) : IResponseFormat
{
    private readonly string _id = "cmpl-" + Guid.NewGuid().ToString("N");
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private readonly StringBuilder _text = new();
    private readonly TextLogprobs _all = new() { Tokens = [], TokenLogprobs = [], TopLogprobs = [], TextOffset = [] };
    private int _offset; // text offset of the next token, counted on the tokens' own text

    public Task WriteStartAsync(SseWriter sse, CancellationToken ct) => Task.CompletedTask;

    public Task WriteDeltaAsync(SseWriter sse, OutputDelta delta, CancellationToken ct)
    {
        if (delta.Text.Length == 0 && delta.Logprobs is not { Count: > 0 }) return Task.CompletedTask;
        TextLogprobs? lp = null;
        if (logprobs)
        {
            lp = new TextLogprobs { Tokens = [], TokenLogprobs = [], TopLogprobs = [], TextOffset = [] };
            Append(lp, delta);
        }
        return WriteChunkAsync(sse, new TextChoice { Text = delta.Text, Logprobs = lp }, ct);
    }

    public Task WriteFinishAsync(SseWriter sse, string finishReason, CancellationToken ct) =>
        WriteChunkAsync(sse, new TextChoice { Text = "", FinishReason = finishReason }, ct);

    public Task WriteUsageAsync(SseWriter sse, UsageDto usage, CancellationToken ct) =>
        sse.WriteAsync(new TextCompletion { Id = _id, Created = _created, Model = model, Choices = [], Usage = usage }, OpenAiJson.Web.TextCompletion, ct);

    public void Add(OutputDelta delta)
    {
        _text.Append(delta.Text);
        if (logprobs) Append(_all, delta);
    }

    public Task WriteWholeAsync(HttpResponse response, string finishReason, UsageDto usage, CancellationToken ct)
    {
        var body = new TextCompletion
        {
            Id = _id, Created = _created, Model = model, Usage = usage,
            Choices = [new TextChoice { Text = _text.ToString(), FinishReason = finishReason, Logprobs = logprobs ? _all : null }],
        };
        response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(response.Body, body, OpenAiJson.Web.TextCompletion, ct);
    }

    private Task WriteChunkAsync(SseWriter sse, TextChoice choice, CancellationToken ct) =>
        sse.WriteAsync(new TextCompletion { Id = _id, Created = _created, Model = model, Choices = [choice] }, OpenAiJson.Web.TextCompletion, ct);

    private void Append(TextLogprobs into, OutputDelta delta)
    {
        if (delta.Logprobs is null) return;
        foreach (TokenLogprob t in delta.Logprobs)
        {
            into.Tokens.Add(t.Token);
            into.TokenLogprobs.Add(t.Logprob);
            var top = new Dictionary<string, float>(t.Top.Count);
            foreach (TokenAlternative a in t.Top) top.TryAdd(a.Token, a.Logprob);
            into.TopLogprobs.Add(top);
            into.TextOffset.Add(_offset);
            _offset += t.Token.Length;
        }
    }
}
