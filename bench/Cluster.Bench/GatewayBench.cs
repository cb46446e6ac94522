using System.Diagnostics;
using System.Globalization;
using System.Text;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Gateway;
using Cluster.Gateway.Grpc;
using Cluster.Gateway.Nodes;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Bench;

/// <summary>
/// What the gateway itself costs: N concurrent streaming clients read the same token streams from an attention
/// node that sends tokens as fast as it can (no model: the stream is the only work), once straight from the node
/// over gRPC and once through the gateway (OpenAI HTTP/SSE, and the Inference gRPC stream), side by side in one run.
/// The gateway detokenizes, runs the stop matcher, and writes one JSON chunk per token: its tokens/s is the ceiling
/// it puts on a cluster, and the difference in time per token is what it adds to each token.
/// </summary>
public static class GatewayBench
{
    private static readonly int[] Concurrency = [1, 8, 32];
    private const int TokensPerRequest = 512, RequestsPerRound = 256;

    public static async Task<int> Run(string[] args)
    {
        string root = BenchEnvironment.RepoRoot();
        string dir = Path.Combine(Path.GetTempPath(), "cluster-bench-gateway-model");
        Directory.CreateDirectory(dir);
        ModelConfig config = SyntheticPresets.Small;
        File.WriteAllBytes(Path.Combine(dir, "config.json"), ModelConfigWriter.ToJson(config));
        string tokenizerDir = Path.Combine(root, "node_modules", "@lenml", "tokenizer-deepseek_v3", "models");
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(tokenizerDir, f), Path.Combine(dir, f), overwrite: true);

        var tokenizer = Cluster.Tokenizer.Tokenizer.FromDirectory(dir);
        // Ordinary text, so detokenizing does what it does for a real answer.
        int[] text = tokenizer.Encode(string.Concat(Enumerable.Repeat(
            "The gateway turns token ids into text, holds back what may start a stop string, and streams JSON chunks to each client. ", 40)));
        var node = new FastNode(text);
        await using var server = await GrpcServer.StartAsync(new GrpcServerOptions(), b => b.Services.AddSingleton(node), app => app.MapGrpcService<FastNode>());
        new RoleHealth(server.Services.GetRequiredService<Grpc.HealthCheck.HealthServiceImpl>()).MarkServing();
        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions
        {
            ModelDir = dir, AttentionNodes = [$"127.0.0.1:{server.Port}"], ModelId = "bench", MaxQueue = 1024,
        });
        using var direct = PeerChannel.ForAddress($"http://127.0.0.1:{server.Port}");
        using var viaGrpc = PeerChannel.ForAddress($"http://127.0.0.1:{gateway.GrpcPort}");
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}"), Timeout = TimeSpan.FromMinutes(2) };
        http.DefaultRequestHeaders.ConnectionClose = false;

        var paths = new (string Name, Func<Task<int>> Request)[]
        {
            ("node gRPC stream (no gateway)", () => DirectAsync(direct)),
            ("gateway gRPC GenerateStream", () => GatewayGrpcAsync(viaGrpc)),
            ("gateway HTTP SSE /v1/completions", () => GatewayHttpAsync(http)),
        };
        foreach (var p in paths) await RoundAsync(p.Request, 8); // warm-up: JIT, connections

        var sb = new StringBuilder();
        sb.AppendLine("| path | clients | tokens/s | vs node | us per token | added by the gateway, us per token |");
        sb.AppendLine("|---|---|---|---|---|---|");
        foreach (int clients in Concurrency)
        {
            Console.Error.WriteLine($"gateway bench: {clients} clients");
            double baseline = 0;
            foreach (var (name, request) in paths)
            {
                double tps = await RoundAsync(request, clients);
                if (baseline == 0) baseline = tps;
                sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {clients} | {tps:F0} | {tps / baseline:F2}x | {1e6 / tps:F2} | {(tps == baseline ? "" : (1e6 / tps - 1e6 / baseline).ToString("F2", CultureInfo.InvariantCulture))} |"));
            }
        }
        Console.WriteLine($"{TokensPerRequest} tokens per request, {RequestsPerRound} requests per round shared by the clients; us per token = round wall time / tokens.");
        Console.WriteLine();
        Console.Write(sb.ToString());
        return 0;
    }

    private static async Task<double> RoundAsync(Func<Task<int>> request, int clients)
    {
        var clock = Stopwatch.StartNew();
        int perClient = Math.Max(1, RequestsPerRound / clients);
        var counts = await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            long tokens = 0;
            for (int i = 0; i < perClient; i++)
            {
                int n = await request();
                if (n != TokensPerRequest) throw new InvalidOperationException($"a request got {n} tokens, not {TokensPerRequest}");
                tokens += n;
            }
            return tokens;
        }));
        return counts.Sum() / clock.Elapsed.TotalSeconds;
    }

    private static TokenGenerateRequest NodeRequest() => new() { RequestId = "bench", PromptTokenIds = { 0, 1 }, Sampling = new() { MaxTokens = TokensPerRequest } };

    private static async Task<int> DirectAsync(PeerChannel channel)
    {
        int tokens = 0;
        using var call = new AttentionService.AttentionServiceClient(channel.Invoker).Generate(NodeRequest());
        while (await call.ResponseStream.MoveNext()) tokens++;
        return tokens;
    }

    private static async Task<int> GatewayGrpcAsync(PeerChannel channel)
    {
        int tokens = 0;
        var request = new GenerateRequest { PromptTokenIds = { 0, 1 }, Sampling = new SamplingParams { MaxTokens = TokensPerRequest } };
        using var call = new Inference.InferenceClient(channel.Invoker).GenerateStream(request);
        while (await call.ResponseStream.MoveNext())
            tokens += call.ResponseStream.Current.TokenIds.Count;
        return tokens;
    }

    private static async Task<int> GatewayHttpAsync(HttpClient http)
    {
        int tokens = 0;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent($"{{\"model\":\"bench\",\"prompt\":[0,1],\"max_tokens\":{TokensPerRequest},\"stream\":true}}", Encoding.UTF8, "application/json"),
        };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        // The text is ASCII and there are no stop strings, so each token is one chunk; the finish chunk carries none.
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal)) continue;
            if (line.Contains("\"finish_reason\":null", StringComparison.Ordinal)) tokens++;
        }
        return tokens;
    }

    /// <summary>An attention node without a model: each request streams max_tokens ids of a fixed text, at once.</summary>
    private sealed class FastNode(int[] text) : AttentionService.AttentionServiceBase
    {
        public override async Task Generate(TokenGenerateRequest request, IServerStreamWriter<TokenEvent> responses, ServerCallContext context)
        {
            for (int i = 0; i < request.Sampling.MaxTokens; i++)
            {
                var e = new TokenEvent { TokenId = (uint)text[i % text.Length], PromptTokens = i == 0 ? (uint)request.PromptTokenIds.Count : 0 };
                if (i == request.Sampling.MaxTokens - 1) e.FinishReason = "length";
                await responses.WriteAsync(e, context.CancellationToken);
            }
        }

        // The gateway routes only to nodes that answer GetStats; without a paged cache it counts no blocks here.
        public override Task<AttentionStats> GetStats(GetStatsRequest request, ServerCallContext context) =>
            Task.FromResult(new AttentionStats { NodeId = "fast", Role = NodeRole.Both });
    }
}
