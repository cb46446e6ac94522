using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;

namespace Cluster.Gateway.OpenAi;

/// <summary>Server-sent events as OpenAI streams them: <c>data: {json}\n\n</c> per event, flushed at once, then <c>data: [DONE]</c>.</summary>
public sealed class SseWriter(HttpResponse response)
{
    private static readonly byte[] s_data = "data: "u8.ToArray();
    private static readonly byte[] s_end = "\n\n"u8.ToArray();
    private static readonly byte[] s_done = "data: [DONE]\n\n"u8.ToArray();

    public bool Started => response.HasStarted;

    public Task StartAsync(CancellationToken ct)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        return response.StartAsync(ct);
    }

    public async Task WriteAsync<T>(T value, JsonTypeInfo<T> type, CancellationToken ct)
    {
        await response.Body.WriteAsync(s_data, ct).ConfigureAwait(false);
        await JsonSerializer.SerializeAsync(response.Body, value, type, ct).ConfigureAwait(false);
        await response.Body.WriteAsync(s_end, ct).ConfigureAwait(false);
        await response.Body.FlushAsync(ct).ConfigureAwait(false);
    }

    public async Task DoneAsync(CancellationToken ct)
    {
        await response.Body.WriteAsync(s_done, ct).ConfigureAwait(false);
        await response.Body.FlushAsync(ct).ConfigureAwait(false);
    }
}
