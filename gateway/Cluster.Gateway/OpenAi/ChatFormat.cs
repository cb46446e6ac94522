using System.Text;
using System.Text.Json;
using Cluster.Gateway.Generation;
using Microsoft.AspNetCore.Http;

namespace Cluster.Gateway.OpenAi;

/// <summary>Chat completions: <c>chat.completion</c> objects, or <c>chat.completion.chunk</c> deltas when streaming.</summary>
public sealed class ChatFormat(string model, bool logprobs) : IResponseFormat
{
    private readonly string _id = "chatcmpl-" + Guid.NewGuid().ToString("N");
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private readonly StringBuilder _content = new(), _reasoning = new();
    private readonly List<ChatTokenLogprob> _logprobs = [];

    public Task WriteStartAsync(SseWriter sse, CancellationToken ct) =>
        WriteChunkAsync(sse, new ChatChoice { Delta = new ChatMessageDto { Role = "assistant", Content = "" } }, ct);

    public Task WriteDeltaAsync(SseWriter sse, OutputDelta delta, CancellationToken ct)
    {
        if (delta.Text.Length == 0 && delta.Reasoning.Length == 0 && delta.Logprobs is not { Count: > 0 }) return Task.CompletedTask;
        var message = new ChatMessageDto
        {
            Content = delta.Text.Length > 0 ? delta.Text : null,
            ReasoningContent = delta.Reasoning.Length > 0 ? delta.Reasoning : null,
        };
        return WriteChunkAsync(sse, new ChatChoice { Delta = message, Logprobs = Logprobs(delta) }, ct);
    }

    public Task WriteFinishAsync(SseWriter sse, string finishReason, CancellationToken ct) =>
        WriteChunkAsync(sse, new ChatChoice { Delta = new ChatMessageDto(), FinishReason = finishReason }, ct);

    public Task WriteUsageAsync(SseWriter sse, UsageDto usage, CancellationToken ct) =>
        sse.WriteAsync(new ChatCompletion { Id = _id, Object = "chat.completion.chunk", Created = _created, Model = model, Choices = [], Usage = usage },
            OpenAiJson.Web.ChatCompletion, ct);

    public void Add(OutputDelta delta)
    {
        _content.Append(delta.Text);
        _reasoning.Append(delta.Reasoning);
        if (Logprobs(delta) is { } lp) _logprobs.AddRange(lp.Content);
    }

    public Task WriteWholeAsync(HttpResponse response, string finishReason, UsageDto usage, CancellationToken ct)
    {
        var message = new ChatMessageDto
        {
            Role = "assistant",
            Content = _content.ToString(),
            ReasoningContent = _reasoning.Length > 0 ? _reasoning.ToString() : null,
        };
        var body = new ChatCompletion
        {
            Id = _id, Object = "chat.completion", Created = _created, Model = model, Usage = usage,
            Choices = [new ChatChoice { Message = message, FinishReason = finishReason, Logprobs = logprobs ? new ChatLogprobs { Content = _logprobs } : null }],
        };
        response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(response.Body, body, OpenAiJson.Web.ChatCompletion, ct);
    }

    private Task WriteChunkAsync(SseWriter sse, ChatChoice choice, CancellationToken ct) =>
        sse.WriteAsync(new ChatCompletion { Id = _id, Object = "chat.completion.chunk", Created = _created, Model = model, Choices = [choice] },
            OpenAiJson.Web.ChatCompletion, ct);

    private ChatLogprobs? Logprobs(OutputDelta delta)
    {
        if (!logprobs || delta.Logprobs is null) return null;
        var content = new List<ChatTokenLogprob>(delta.Logprobs.Count);
        foreach (TokenLogprob t in delta.Logprobs)
        {
            var top = new List<ChatTopLogprob>(t.Top.Count);
            foreach (TokenAlternative a in t.Top)
                top.Add(new ChatTopLogprob { Token = a.Token, Logprob = a.Logprob, Bytes = ServedModel.Utf8Bytes(a.Token) });
            content.Add(new ChatTokenLogprob { Token = t.Token, Logprob = t.Logprob, Bytes = ServedModel.Utf8Bytes(t.Token), TopLogprobs = top });
        }
        return new ChatLogprobs { Content = content };
    }
}
