using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Cluster.Bench;

/// <summary>One streamed completion as a client saw it: when each token arrived (ms since the request was sent) and its usage.</summary>
public sealed record StreamedCompletion(List<double> TokenTimes, int CompletionTokens, int CachedTokens);

/// <summary>Greedy streamed <c>/v1/completions</c> with token-id prompts against a gateway, the model named by its /v1/models.</summary>
public sealed class CompletionClient(HttpClient http, string endpoint)
{
    private string? _model;

    public async Task<StreamedCompletion> StreamAsync(uint[] prompt, int maxTokens)
    {
        _model ??= JsonDocument.Parse(await http.GetStringAsync($"{endpoint}/v1/models")).RootElement.GetProperty("data")[0].GetProperty("id").GetString();
        string body = JsonSerializer.Serialize(new { model = _model, prompt, max_tokens = maxTokens, temperature = 0, stream = true, stream_options = new { include_usage = true } });
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{endpoint}/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var times = new List<double>();
        int completion = 0, cached = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal) || line == "data: [DONE]") continue;
            using var chunk = JsonDocument.Parse(line.AsMemory(6));
            if (chunk.RootElement.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
            {
                completion = usage.GetProperty("completion_tokens").GetInt32();
                if (usage.TryGetProperty("prompt_tokens_details", out var details) && details.ValueKind == JsonValueKind.Object)
                    cached = details.GetProperty("cached_tokens").GetInt32();
            }
            if (chunk.RootElement.GetProperty("choices").GetArrayLength() > 0) times.Add(clock.Elapsed.TotalMilliseconds);
        }
        if (times.Count == 0) throw new InvalidOperationException("a completion streamed no token");
        return new StreamedCompletion(times, completion, cached);
    }
}
