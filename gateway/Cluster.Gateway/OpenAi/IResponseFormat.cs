using Cluster.Gateway.Generation;
using Microsoft.AspNetCore.Http;

namespace Cluster.Gateway.OpenAi;

/// <summary>How one endpoint shapes its output: streamed chunks, or the whole answer at the end.</summary>
public interface IResponseFormat
{
    Task WriteStartAsync(SseWriter sse, CancellationToken ct);
    Task WriteDeltaAsync(SseWriter sse, OutputDelta delta, CancellationToken ct);
    Task WriteFinishAsync(SseWriter sse, string finishReason, CancellationToken ct);
    Task WriteUsageAsync(SseWriter sse, UsageDto usage, CancellationToken ct);

    /// <summary>Collects a delta for the answer a non-streaming request gets.</summary>
    void Add(OutputDelta delta);
    Task WriteWholeAsync(HttpResponse response, string finishReason, UsageDto usage, CancellationToken ct);
}
