using System.Net.Http.Json;
using System.Text.Json;
using Cluster.AttentionNode;
using Cluster.Cli.Supervision;
using Cluster.Protos.V1;
using Cluster.Transport;

namespace Cluster.Cli.Commands;

/// <summary>
/// <c>cluster demo</c>: <c>cluster up</c>, one chat request streamed over the gateway's OpenAI API and printed as
/// it arrives, each node's statistics, then every process stopped.
/// </summary>
public static class DemoCommand
{
    public const string Usage = "demo [--prompt TEXT] [--max-tokens 48] [cluster up options]";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string prompt = args.String("prompt", "Explain in one sentence what a mixture-of-experts model is.");
        int maxTokens = args.Int("max-tokens", 48, 1, 4096);
        ClusterLayout layout = UpCommand.ParseLayout(args, cancel);
        args.RejectUnknown();

        await using ClusterSupervisor cluster = await ClusterSupervisor.StartAsync(layout, cancel);
        UpCommand.PrintEndpoints(cluster);
        Task<ChildProcess> died = cluster.FirstExitAsync();
        Task chat = ChatAsync(cluster.HttpEndpoint, prompt, maxTokens, cancel);
        if (await Task.WhenAny(chat, died) == died) throw new CliException(ClusterSupervisor.PostMortem(await died));
        await chat;
        await PrintStatisticsAsync(cluster, cancel);
        Console.Error.WriteLine("cluster demo: stopping every node");
        return 0;
    }

    private static async Task ChatAsync(string endpoint, string prompt, int maxTokens, CancellationToken cancel)
    {
        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        using var models = JsonDocument.Parse(await http.GetStringAsync($"{endpoint}/v1/models", cancel));
        string model = models.RootElement.GetProperty("data")[0].GetProperty("id").GetString()!;
        var body = new
        {
            model,
            stream = true,
            max_tokens = maxTokens,
            stream_options = new { include_usage = true },
            messages = new[] { new { role = "user", content = prompt } },
        };
        Console.WriteLine();
        Console.WriteLine($"user> {prompt}");
        Console.Write("assistant> ");
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{endpoint}/v1/chat/completions") { Content = JsonContent.Create(body) };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel);
        if (!response.IsSuccessStatusCode)
            throw new CliException($"chat request failed: HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancel)}");
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel));
        double? firstToken = null;
        string usage = "";
        while (await reader.ReadLineAsync(cancel) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            string data = line[6..];
            if (data == "[DONE]") break;
            using var chunk = JsonDocument.Parse(data);
            JsonElement root = chunk.RootElement;
            if (root.TryGetProperty("usage", out JsonElement u) && u.ValueKind == JsonValueKind.Object)
                usage = $"{u.GetProperty("prompt_tokens").GetInt32()} prompt + {u.GetProperty("completion_tokens").GetInt32()} completion tokens";
            if (!root.TryGetProperty("choices", out JsonElement choices) || choices.GetArrayLength() == 0) continue;
            JsonElement delta = choices[0].GetProperty("delta");
            foreach (string field in new[] { "reasoning_content", "content" })
                if (delta.TryGetProperty(field, out JsonElement text) && text.ValueKind == JsonValueKind.String && text.GetString() is { Length: > 0 } s)
                {
                    firstToken ??= clock.Elapsed.TotalSeconds;
                    Console.Write(s);
                    Console.Out.Flush();
                }
        }
        Console.WriteLine();
        Console.WriteLine($"({usage}; first token after {firstToken ?? 0:F2} s, done in {clock.Elapsed.TotalSeconds:F2} s)");
        Console.WriteLine();
    }

    private static async Task PrintStatisticsAsync(ClusterSupervisor cluster, CancellationToken cancel)
    {
        Console.WriteLine($"{"node",-14} {"role",-10} {"prompt tok",10} {"generated",10} {"expert rows",12}  busiest expert slot");
        foreach (var (id, role, endpoint, _) in cluster.AttentionNodes)
        {
            using var channel = PeerChannel.ForAddress($"http://{endpoint}", new GrpcClientOptions { ClusterToken = cluster.Token });
            AttentionStats s = await new Protos.V1.AttentionService.AttentionServiceClient(channel.Invoker)
                .GetStatsAsync(new GetStatsRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancel);
            ulong routed = 0;
            foreach (ulong n in s.ExpertTokens) routed += n;
            Console.WriteLine($"{id,-14} {role,-10} {s.PromptTokens,10} {s.GeneratedTokens,10} {routed,12}");
        }
        foreach (var (id, endpoint, _) in cluster.ExpertNodes)
        {
            using var channel = PeerChannel.ForAddress($"http://{endpoint}", new GrpcClientOptions { ClusterToken = cluster.Token });
            ExpertNodeInfo info = await new ExpertService.ExpertServiceClient(channel.Invoker)
                .GetInfoAsync(new GetExpertInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancel);
            ulong rows = 0, most = 0;
            int busiest = -1;
            for (int i = 0; i < info.SlotTokens.Count; i++)
            {
                rows += info.SlotTokens[i];
                if (info.SlotTokens[i] > most) (most, busiest) = (info.SlotTokens[i], i);
            }
            string slot = busiest < 0 ? "-" : $"layer {info.Slots[busiest].Layer} expert {info.Slots[busiest].Expert}: {most} rows";
            Console.WriteLine($"{id,-14} {"expert",-10} {"",10} {"",10} {rows,12}  {slot} ({info.Slots.Count} slots)");
        }
    }
}
