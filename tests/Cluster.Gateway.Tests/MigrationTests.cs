using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.RegularExpressions;
using Cluster.AttentionNode;
using Cluster.Engine.Cache;
using Cluster.Gateway.Nodes;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Gateway.Tests;

/// <summary>Two real attention nodes in exact mode (f32 latent cache, routed experts in-process), shared by the migration tests.</summary>
public sealed class ExactNodes : IAsyncLifetime
{
    public AttentionHost A { get; private set; } = null!;
    public AttentionHost B { get; private set; } = null!;
    public string EndpointA => $"127.0.0.1:{A.Port}";
    public string EndpointB => $"127.0.0.1:{B.Port}";

    public async Task InitializeAsync()
    {
        A = await AttentionHost.StartAsync(Options("migration-a"));
        B = await AttentionHost.StartAsync(Options("migration-b"));
    }

    private static AttentionOptions Options(string id) =>
        new() { ModelDir = TestModel.Dir, NodeId = id, MaxBatch = 8, KvCacheFormat = LatentFormat.F32, KvCacheBytes = 64L << 20 };

    public async Task DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
    }
}

/// <summary>
/// A node lost after the first token: the gateway replays prompt + generated tokens on another node and the client's
/// stream goes on, token for token what the undisturbed run gives (greedy in exact mode, and seeded sampling, whose
/// sequence the new node's sampler continues), up to the migration limit.
/// </summary>
public sealed class MigrationTests(ExactNodes nodes) : IClassFixture<ExactNodes>
{
    private static readonly int[] Prompt = [0, 11, 12, 13, 14, 15];

    private sealed record Run(string Text, string[] Tokens, double[] Logprobs, string? Finish, int PromptTokens, int CompletionTokens, string? Error);

    private sealed class Warnings : ILoggerProvider
    {
        public ConcurrentQueue<string> Lines { get; } = new();
        public ILogger CreateLogger(string category) => new Logger(this, category);
        public void Dispose() { }

        private sealed class Logger(Warnings sink, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel level) => level >= LogLevel.Warning;
            public void Log<TState>(LogLevel level, EventId id, TState state, Exception? e, Func<TState, Exception?, string> format)
            {
                if (level >= LogLevel.Warning && category == typeof(NodeRouter).FullName) sink.Lines.Enqueue(format(state, e));
            }
        }
    }

    private static async Task<(GatewayHost, Warnings)> GatewayAsync(IReadOnlyList<string> endpoints, int maxMigrations = 2)
    {
        var warnings = new Warnings();
        GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options(endpoints) with { MaxMigrations = maxMigrations },
            services => services.AddSingleton<ILoggerProvider>(warnings));
        return (gateway, warnings);
    }

    /// <summary>A streamed completion read to its end: text, tokens and logprobs as the client saw them, or the error event.</summary>
    private static async Task<Run> StreamAsync(GatewayHost gateway, object body)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}"), Timeout = TimeSpan.FromSeconds(60) };
        List<string> events = await ApiClient.StreamAsync(http, "/v1/completions", body);
        Assert.Equal("[DONE]", events[^1]);
        var text = new System.Text.StringBuilder();
        var tokens = new List<string>();
        var logprobs = new List<double>();
        string? finish = null, error = null;
        int prompt = 0, completion = 0;
        foreach (string data in events[..^1])
        {
            using var json = JsonDocument.Parse(data);
            JsonElement root = json.RootElement;
            if (root.TryGetProperty("error", out JsonElement e)) { error = e.GetProperty("message").GetString(); continue; }
            if (root.TryGetProperty("usage", out JsonElement usage) && usage.ValueKind == JsonValueKind.Object)
            {
                prompt = usage.GetProperty("prompt_tokens").GetInt32();
                completion = usage.GetProperty("completion_tokens").GetInt32();
            }
            foreach (JsonElement choice in root.GetProperty("choices").EnumerateArray())
            {
                text.Append(choice.GetProperty("text").GetString());
                if (choice.TryGetProperty("finish_reason", out JsonElement f) && f.ValueKind == JsonValueKind.String) finish = f.GetString();
                if (choice.TryGetProperty("logprobs", out JsonElement lp) && lp.ValueKind == JsonValueKind.Object)
                {
                    foreach (JsonElement t in lp.GetProperty("tokens").EnumerateArray()) tokens.Add(t.GetString()!);
                    foreach (JsonElement l in lp.GetProperty("token_logprobs").EnumerateArray()) logprobs.Add(l.GetDouble());
                }
            }
        }
        return new Run(text.ToString(), [.. tokens], [.. logprobs], finish, prompt, completion, error);
    }

    private static object Body(int maxTokens, double temperature = 0, ulong? seed = null, string[]? stop = null) => new Dictionary<string, object?>
    {
        ["model"] = "tiny-test", ["prompt"] = Prompt, ["max_tokens"] = maxTokens, ["temperature"] = temperature, ["seed"] = seed,
        ["stop"] = stop, ["logprobs"] = 2, ["stream"] = true, ["stream_options"] = new { include_usage = true },
    };

    /// <summary>The run on node A alone, never disturbed.</summary>
    private async Task<Run> UndisturbedAsync(object body)
    {
        var (gateway, _) = await GatewayAsync([nodes.EndpointA]);
        await using (gateway) return await StreamAsync(gateway, body);
    }

    private static void AssertSameRun(Run expected, Run actual)
    {
        Assert.Null(actual.Error);
        Assert.Equal(expected.Text, actual.Text);
        Assert.Equal(expected.Tokens, actual.Tokens);
        Assert.Equal(expected.Finish, actual.Finish);
        Assert.Equal(expected.PromptTokens, actual.PromptTokens);
        Assert.Equal(expected.CompletionTokens, actual.CompletionTokens);
        Assert.Equal(expected.Logprobs.Length, actual.Logprobs.Length);
        // The replayed prefix is prefilled in one pass where the undisturbed run decoded it step by step: the same
        // argmax, logprobs equal to rounding.
        for (int i = 0; i < expected.Logprobs.Length; i++) Assert.True(Math.Abs(expected.Logprobs[i] - actual.Logprobs[i]) < 1e-3, $"logprob {i}: {expected.Logprobs[i]} vs {actual.Logprobs[i]}");
    }

    /// <summary>
    /// Runs <paramref name="body"/> on a gateway over <paramref name="dying"/> and node B until a stream starts on the
    /// dying node (idle nodes take turns), asserting every run equals <paramref name="expected"/>.
    /// </summary>
    private async Task<Warnings> RunUntilMigratedAsync(DyingNode dying, object body, Run expected)
    {
        var (gateway, warnings) = await GatewayAsync([dying.Endpoint, nodes.EndpointB]);
        await using (gateway)
        {
            for (int i = 0; i < 4 && dying.Deaths == 0; i++) AssertSameRun(expected, await StreamAsync(gateway, body));
            Assert.Equal(1, dying.Deaths);
            Assert.All(gateway.Router.Nodes, n => Assert.Equal(0, n.InFlight));
        }
        return warnings;
    }

    [Fact]
    public async Task A_greedy_stream_whose_node_resets_it_continues_on_another_node_token_for_token()
    {
        object body = Body(maxTokens: 24);
        Run expected = await UndisturbedAsync(body);
        Assert.Equal(24, expected.CompletionTokens);
        await using DyingNode dying = await DyingNode.StartAsync(nodes.EndpointA, dieAfter: 5, DyingNode.Death.ResetStream);
        Warnings warnings = await RunUntilMigratedAsync(dying, body, expected);

        // A reset may drop the last event the stand-in wrote, so the gateway counts what reached it.
        string line = Assert.Single(warnings.Lines);
        Assert.Matches($@"^request [0-9a-f]{{32}} lost attention node {Regex.Escape(dying.Endpoint)} after [1-5] tokens \(.*reset the stream", line);
        Assert.Contains($"migrated to {nodes.EndpointB} (migration 1 of at most 2)", line);
    }

    [Fact]
    public async Task A_seeded_stream_continues_its_sampling_sequence_on_the_new_node()
    {
        object body = Body(maxTokens: 24, temperature: 1.0, seed: 1234);
        Run expected = await UndisturbedAsync(body);
        // The seed matters: another seed samples another completion.
        Assert.NotEqual(expected.Tokens, (await UndisturbedAsync(Body(maxTokens: 24, temperature: 1.0, seed: 99))).Tokens);
        await using DyingNode dying = await DyingNode.StartAsync(nodes.EndpointA, dieAfter: 7);
        await RunUntilMigratedAsync(dying, body, expected);
    }

    [Fact]
    public async Task An_unseeded_sampled_stream_gets_its_seed_from_the_gateway_so_a_migration_continues_its_sequence()
    {
        object body = Body(maxTokens: 24, temperature: 1.0);
        await using DyingNode dying = await DyingNode.StartAsync(nodes.EndpointA, dieAfter: 7);
        Run migrated = null!;
        var (gateway, _) = await GatewayAsync([dying.Endpoint, nodes.EndpointB]);
        await using (gateway)
            for (int i = 0; i < 4 && dying.Deaths == 0; i++) migrated = await StreamAsync(gateway, body);
        Assert.Equal(1, dying.Deaths);
        // The node the stream began on was sent a seed the client never gave; the run with that seed, undisturbed, is
        // what the migrated stream was, so the new node continued the first node's draws.
        SamplingParams sampling = Assert.Single(dying.Received).Sampling;
        Assert.True(sampling.HasSeed, "the gateway fixed no seed");
        AssertSameRun(await UndisturbedAsync(Body(maxTokens: 24, temperature: 1.0, seed: sampling.Seed)), migrated);
    }

    [Fact]
    public async Task Stop_strings_keep_matching_across_a_migration()
    {
        Run whole = await UndisturbedAsync(Body(maxTokens: 32));
        // A stop string from the text's last quarter, well after the node dies.
        string stop = whole.Text.Substring(whole.Text.Length * 3 / 4, 2);
        object body = Body(maxTokens: 32, stop: [stop]);
        Run expected = await UndisturbedAsync(body);
        Assert.Equal("stop", expected.Finish);
        Assert.Equal(whole.Text[..whole.Text.IndexOf(stop, StringComparison.Ordinal)], expected.Text);
        await using DyingNode dying = await DyingNode.StartAsync(nodes.EndpointA, dieAfter: 4);
        await RunUntilMigratedAsync(dying, body, expected);
    }

    [Fact]
    public async Task A_request_migrates_as_often_as_the_limit_allows_and_then_ends_with_the_error()
    {
        object body = Body(maxTokens: 8);
        Run expected = await UndisturbedAsync(body);
        await using DyingNode first = await DyingNode.StartAsync(nodes.EndpointA, dieAfter: 3), second = await DyingNode.StartAsync(nodes.EndpointB, dieAfter: 3),
            third = await DyingNode.StartAsync(nodes.EndpointA, dieAfter: 3);
        DyingNode[] all = [first, second, third];

        // Two lost nodes, two migrations: 3 + 3 tokens, and the last node finishes the 2 left before it would die.
        var (gateway, warnings) = await GatewayAsync([.. all.Select(d => d.Endpoint)]);
        await using (gateway)
        {
            AssertSameRun(expected, await StreamAsync(gateway, body));
            Assert.Equal(2, all.Sum(d => d.Deaths));
            Assert.Equal(2, warnings.Lines.Count);
            // Each continuation replays what came before and asks for what is left, with the sampler past its draws.
            TokenGenerateRequest[] received = [.. all.SelectMany(d => d.Received).OrderBy(r => r.PromptTokenIds.Count)];
            Assert.Equal([Prompt.Length, Prompt.Length + 3, Prompt.Length + 6], received.Select(r => r.PromptTokenIds.Count));
            Assert.Equal([8u, 5u, 2u], received.Select(r => r.Sampling.MaxTokens));
            Assert.Equal([0u, 3u, 6u], received.Select(r => r.SampledTokens));
            Assert.All(received, r => Assert.Equal(received[0].RequestId, r.RequestId));
            Assert.Equal(received[1].PromptTokenIds.Take(Prompt.Length + 3), received[2].PromptTokenIds.Take(Prompt.Length + 3));
        }

        // With one migration allowed the second loss ends the stream with the error, after the 6 tokens that came.
        var (limited, limitedWarnings) = await GatewayAsync([.. all.Select(d => d.Endpoint)], maxMigrations: 1);
        await using (limited)
        {
            Run cut = await StreamAsync(limited, body);
            Assert.Contains("died mid-stream", cut.Error);
            Assert.Equal(expected.Tokens[..6], cut.Tokens);
            Assert.Contains(limitedWarnings.Lines, l => l.Contains("not migrated: 1 migrations is the limit", StringComparison.Ordinal));
            Assert.All(limited.Router.Nodes, n => Assert.Equal(0, n.InFlight));
        }
    }

    [Fact]
    public async Task A_split_request_whose_decode_node_dies_continues_on_another_decode_node()
    {
        // Seeded: the prefill node samples the first token, each decode node continues the sequence past the draws before.
        object body = Body(maxTokens: 24, temperature: 1.0, seed: 77);
        Run expected = await UndisturbedAsync(body);
        AttentionOptions Split(string id, NodeRole role) => new()
        {
            ModelDir = TestModel.Dir, NodeId = id, Role = role, KvCacheFormat = LatentFormat.F32, KvCacheBytes = 64L << 20,
        };
        await using AttentionHost prefill = await AttentionHost.StartAsync(Split("migration-prefill", NodeRole.Prefill)),
            first = await AttentionHost.StartAsync(Split("migration-decode-0", NodeRole.Decode)),
            second = await AttentionHost.StartAsync(Split("migration-decode-1", NodeRole.Decode));
        await using DyingNode dying = await DyingNode.StartAsync($"127.0.0.1:{first.Port}", dieAfter: 6);
        var warnings = new Warnings();
        await using GatewayHost gateway = await GatewayHost.StartAsync(ClusterFixture.Options([]) with
        {
            PrefillNodes = [$"127.0.0.1:{prefill.Port}"],
            DecodeNodes = [dying.Endpoint, $"127.0.0.1:{second.Port}"],
        }, services => services.AddSingleton<ILoggerProvider>(warnings));
        for (int i = 0; i < 4 && dying.Deaths == 0; i++) AssertSameRun(expected, await StreamAsync(gateway, body));
        Assert.Equal(1, dying.Deaths);
        Assert.Contains(warnings.Lines, l => l.Contains($"lost attention node {dying.Endpoint} after 6 tokens", StringComparison.Ordinal)
            && l.Contains($"migrated to 127.0.0.1:{second.Port}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task With_no_other_node_a_lost_node_ends_the_stream_with_its_error()
    {
        await using DyingNode only = await DyingNode.StartAsync(nodes.EndpointA, dieAfter: 2);
        var (gateway, warnings) = await GatewayAsync([only.Endpoint]);
        await using (gateway)
        {
            Run cut = await StreamAsync(gateway, Body(maxTokens: 8));
            Assert.Contains("died mid-stream", cut.Error);
            Assert.Equal(2, cut.Tokens.Length);
            Assert.Contains(warnings.Lines, l => l.Contains("not migrated: no other attention node is usable", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_node_checks_sampled_tokens_against_the_prompt()
    {
        using var channel = PeerChannel.ForAddress($"http://{nodes.EndpointA}");
        var client = new Protos.V1.AttentionService.AttentionServiceClient(channel.Invoker);
        var request = new TokenGenerateRequest { PromptTokenIds = { 0, 11, 12 }, Sampling = new SamplingParams { MaxTokens = 2 }, SampledTokens = 3 };
        using var call = client.Generate(request);
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("sampled_tokens: 3 sampled tokens in a prompt of 3 (at most 2)", e.Status.Detail);
    }
}
