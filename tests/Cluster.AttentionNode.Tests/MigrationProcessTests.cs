using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Cluster.Protos.V1;
using Cluster.Tests;
using Cluster.Transport;
using UpProcess = Cluster.AttentionNode.Tests.ClusterUpProcessTests.UpProcess;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// Request migration across a real process boundary: <c>cluster up</c> with two attention nodes in exact mode, one of
/// them killed with SIGKILL while streams run on it. Every client stream completes, token for token what the
/// undisturbed run gave, greedy and seeded alike, and the gateway logs each migration.
/// </summary>
public sealed class MigrationProcessTests : IDisposable
{
    private const int MaxTokens = 512;
    private readonly string _model = Directory.CreateTempSubdirectory("migration-test-model-").FullName;

    public MigrationProcessTests()
    {
        foreach (string f in Directory.GetFiles(TinyModel.Directory)) File.Copy(f, Path.Combine(_model, Path.GetFileName(f)));
        string tokenizer = Path.Combine(Repo.NodeModules, "@lenml", "tokenizer-deepseek_v3", "models");
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(tokenizer, f), Path.Combine(_model, f));
    }

    public void Dispose() => Directory.Delete(_model, true);

    [Fact]
    public async Task StreamsOfAKilledAttentionNodeContinueOnTheOtherAndEqualTheUndisturbedRun()
    {
        using var up = await UpProcess.StartReadyAsync(TimeSpan.FromSeconds(180), _model, "--attention-nodes", "2", "--expert-nodes", "1",
            "--dispatch", "f32", "--kv-cache-dtype", "f32");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(180) };
        string model = JsonSerializer.Serialize(Path.GetFileName(_model));
        // Even streams greedy, odd ones seeded sampling.
        async Task<(string Text, int Completion)> Stream(int i)
        {
            string sampling = i % 2 == 0 ? "\"temperature\":0" : $"\"temperature\":1,\"seed\":{100 + i}";
            var body = new StringContent($$"""{"model":{{model}},"prompt":[0,{{5 + i}},6,7],"max_tokens":{{MaxTokens}},{{sampling}},"stream":true,"stream_options":{"include_usage":true} }""",
                Encoding.UTF8, "application/json");
            using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{up.HttpPort}/v1/completions") { Content = body };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var text = new StringBuilder();
            int completion = 0;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: {", StringComparison.Ordinal)) continue;
                using var chunk = JsonDocument.Parse(line.AsMemory(6));
                Assert.False(chunk.RootElement.TryGetProperty("error", out var error), $"stream {i} failed: {error}");
                if (chunk.RootElement.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                {
                    Assert.Equal(4, usage.GetProperty("prompt_tokens").GetInt32());
                    completion = usage.GetProperty("completion_tokens").GetInt32();
                }
                foreach (var choice in chunk.RootElement.GetProperty("choices").EnumerateArray()) text.Append(choice.GetProperty("text").GetString());
            }
            return (text.ToString(), completion);
        }
        (string, int)[] undisturbed = await Task.WhenAll(Enumerable.Range(0, 4).Select(Stream));
        // Greedy runs reach max_tokens; a seeded one may sample EOS first.
        Assert.All(undisturbed.Where((_, i) => i % 2 == 0), r => Assert.Equal(MaxTokens, r.Item2));

        int victim = up.ChildPids().Single(p => UpProcess.CommandLine(p).Contains("--node-id attention-0", StringComparison.Ordinal));
        Match line = Regex.Match(up.Stdout, @"(?m)^attention-0 +both attention +(127\.0\.0\.1:\d+) ");
        Assert.True(line.Success, up.Stdout);
        using var channel = PeerChannel.ForAddress($"http://{line.Groups[1].Value}", new GrpcClientOptions { ClusterToken = up.Token });
        var stats = new Protos.V1.AttentionService.AttentionServiceClient(channel.Invoker);
        ulong generated = (await stats.GetStatsAsync(new GetStatsRequest()).ResponseAsync).GeneratedTokens;
        Task<(string, int)>[] running = [.. Enumerable.Range(0, 4).Select(Stream)];
        // Killed once its streams are well under way (the clients read behind what the node has generated).
        var until = DateTime.UtcNow.AddSeconds(60);
        while ((await stats.GetStatsAsync(new GetStatsRequest()).ResponseAsync).GeneratedTokens < generated + 32 && DateTime.UtcNow < until) await Task.Delay(1);
        Process.GetProcessById(victim).Kill();
        (string, int)[] migrated = await Task.WhenAll(running);
        Assert.Equal(undisturbed, migrated);

        string stderr = up.Stderr;
        Assert.Matches(@"request [0-9a-f]{32} lost attention node 127\.0\.0\.1:\d+ after \d+ tokens \(.*\); migrated to 127\.0\.0\.1:\d+", stderr);
        Assert.Contains("(migration 1 of at most 2)", stderr);
        Assert.DoesNotContain("not migrated", stderr);
    }
}
