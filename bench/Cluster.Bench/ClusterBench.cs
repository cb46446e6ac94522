using System.Diagnostics;
using System.Globalization;
using Cluster.AttentionNode;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.Bench;

/// <summary>
/// N concurrent streaming clients on the small preset, side by side in one run: the cluster started by
/// <c>cluster up</c> (gateway, one attention node, two expert nodes, each its own process; clients speak
/// OpenAI HTTP with token-id prompts) against one process (an attention node in this process with its routed
/// experts local; clients call its Generate directly). Same prompts, greedy, same max tokens, EOS ignored by
/// picking prompts and lengths the same way for both. Reports time to first token and time per output token
/// (p50, p99 over requests) and output tokens/s over the round. With <c>--cluster-tls</c> or
/// <c>--micro-batch-overlap</c>, a second cluster up started with that flag runs the same rounds beside the first.
/// </summary>
public static class ClusterBench
{
    private static readonly int[] Concurrency = [1, 4, 8, 32];
    private const int RequestsPerClient = 4, PromptTokens = 32, MaxTokens = 32;

    public static async Task<int> Run(string[] args)
    {
        // Each of these flags starts a second cluster up with it beside the first, for what the flag changes: internal
        // TLS, dual micro-batch overlap, or the expert nodes' kernel threads.
        string[] variantArgs = [];
        int at = Array.FindIndex(args, a => a is "--cluster-tls" or "--micro-batch-overlap" or "--expert-threads");
        if (at >= 0)
        {
            int length = args[at] == "--expert-threads" ? 2 : 1;
            if (at + length > args.Length) { Console.Error.WriteLine("cluster bench: --expert-threads needs a count"); return 1; }
            variantArgs = args[at..(at + length)];
            args = [.. args[..at], .. args[(at + length)..]];
        }
        string? variant = variantArgs.Length == 0 ? null : string.Join(' ', variantArgs);
        string? model = args.Length > 0 ? args[0] : BenchEnvironment.TryFindRepoRoot() is { } root ? Path.Combine(root, "models", "small") : null;
        if (model is null)
        {
            Console.Error.WriteLine("cluster bench: no Cluster.sln above the benchmark or the working directory; give the model directory: cluster MODEL_DIR");
            return 1;
        }
        if (!File.Exists(Path.Combine(model, "config.json")))
        {
            Console.Error.WriteLine($"cluster bench: {model} has no config.json (run './cluster demo' once, or 'cluster model init --preset small --out {model}')");
            return 1;
        }
        int[] ports = Cluster.Cli.Supervision.FreePorts.Take(2);
        Console.Error.WriteLine("cluster bench: starting cluster up (1 attention node, 2 expert nodes, 2 redundant experts) and a local attention node");
        using var up = ClusterUpProcess.Start(model, ports[0], ports[1], "--expert-nodes", "2", "--redundant-experts", "2");
        await using var local = await AttentionHost.StartAsync(new AttentionOptions { ModelDir = model, NodeId = "local" });
        await ClusterUpProcess.WaitReadyAsync(up, TimeSpan.FromMinutes(5));
        int[] variantPorts = variant is null ? [] : Cluster.Cli.Supervision.FreePorts.Take(2);
        using Process? upVariant = variant is null ? null : ClusterUpProcess.Start(model, variantPorts[0], variantPorts[1], ["--expert-nodes", "2", "--redundant-experts", "2", .. variantArgs]);
        if (upVariant is not null) await ClusterUpProcess.WaitReadyAsync(upVariant, TimeSpan.FromMinutes(5));
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(5) };
        string endpoint = $"http://127.0.0.1:{ports[0]}";
        var completions = new CompletionClient(http, endpoint);
        CompletionClient? completionsVariant = variant is null ? null : new CompletionClient(http, $"http://127.0.0.1:{variantPorts[0]}");
        using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{local.Port}");

        // Warm both paths (JIT, connections) before measuring.
        await RoundAsync(n => ClusterRequest(completions, Prompt(n)), 1);
        await RoundAsync(n => LocalRequest(channel, Prompt(n)), 1);
        if (completionsVariant is not null) await RoundAsync(n => ClusterRequest(completionsVariant, Prompt(n)), 1);

        var rows = new List<string>();
        foreach (int clients in Concurrency)
        {
            Console.Error.WriteLine($"cluster bench: {clients} clients");
            Round cluster = await RoundAsync(n => ClusterRequest(completions, Prompt(n)), clients);
            Round single = await RoundAsync(n => LocalRequest(channel, Prompt(n)), clients);
            rows.Add(Row("cluster (HTTP, 2 expert nodes)", clients, cluster));
            rows.Add(Row("one process (gRPC, local experts)", clients, single));
            rows.Add($"| cluster / one process | {clients} | | | | | {cluster.TokensPerSecond / single.TokensPerSecond:F2}x |");
            if (completionsVariant is null) continue;
            Round other = await RoundAsync(n => ClusterRequest(completionsVariant, Prompt(n)), clients);
            rows.Add(Row($"cluster {variant}", clients, other));
            rows.Add($"| cluster {variant} / cluster | {clients} | | | | | {other.TokensPerSecond / cluster.TokensPerSecond:F2}x |");
        }
        ClusterUpProcess.Stop(up);
        if (upVariant is not null) ClusterUpProcess.Stop(upVariant);

        Console.WriteLine($"Small preset ({Path.GetFileName(model)}), {PromptTokens}-token prompts, {MaxTokens} output tokens, greedy, {RequestsPerClient} requests per client; {Environment.ProcessorCount} cores shared by every process.");
        Console.WriteLine();
        Console.WriteLine("| setup | clients | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms | output tokens/s |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (string r in rows) Console.WriteLine(r);
        return 0;
    }

    private sealed record Sample(double FirstTokenMs, double PerTokenMs, int Tokens);

    private sealed record Round(List<Sample> Samples, double Seconds)
    {
        public double TokensPerSecond => Samples.Sum(s => s.Tokens) / Seconds;
    }

    private static string Row(string setup, int clients, Round r)
    {
        double[] ttft = r.Samples.Select(s => s.FirstTokenMs).Order().ToArray(), tpot = r.Samples.Select(s => s.PerTokenMs).Order().ToArray();
        return string.Create(CultureInfo.InvariantCulture,
            $"| {setup} | {clients} | {Pct(ttft, 0.5):F0} | {Pct(ttft, 0.99):F0} | {Pct(tpot, 0.5):F1} | {Pct(tpot, 0.99):F1} | {r.TokensPerSecond:F1} |");
    }

    private static double Pct(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];

    private static async Task<Round> RoundAsync(Func<int, Task<Sample>> request, int clients)
    {
        var clock = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, clients).Select(async c =>
        {
            var samples = new List<Sample>();
            for (int i = 0; i < RequestsPerClient; i++) samples.Add(await request(c * RequestsPerClient + i));
            return samples;
        }).ToArray();
        var all = (await Task.WhenAll(tasks)).SelectMany(s => s).ToList();
        return new Round(all, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Deterministic prompts of ordinary vocabulary ids after BOS.</summary>
    private static uint[] Prompt(int n)
    {
        var ids = new uint[PromptTokens];
        for (int i = 1; i < ids.Length; i++) ids[i] = (uint)(1000 + (n * 7919 + i * 104729) % 100_000);
        return ids;
    }

    private static async Task<Sample> ClusterRequest(CompletionClient completions, uint[] prompt)
    {
        StreamedCompletion c = await completions.StreamAsync(prompt, MaxTokens);
        double first = c.TokenTimes[0], last = c.TokenTimes[^1];
        return new Sample(first, c.CompletionTokens > 1 ? (last - first) / (c.CompletionTokens - 1) : 0, c.CompletionTokens);
    }

    private static async Task<Sample> LocalRequest(PeerChannel channel, uint[] prompt)
    {
        var clock = Stopwatch.StartNew();
        using var call = new Protos.V1.AttentionService.AttentionServiceClient(channel.Invoker)
            .Generate(new TokenGenerateRequest { PromptTokenIds = { prompt }, Sampling = new() { MaxTokens = MaxTokens } });
        double first = 0, last = 0;
        int tokens = 0;
        while (await call.ResponseStream.MoveNext())
        {
            tokens++;
            last = clock.Elapsed.TotalMilliseconds;
            if (first == 0) first = last;
        }
        return new Sample(first, tokens > 1 ? (last - first) / (tokens - 1) : 0, tokens);
    }
}
