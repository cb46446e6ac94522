using System.Globalization;

namespace Cluster.Bench;

/// <summary>
/// Prefill/decode disaggregation on the small preset, two setups started by <c>cluster up</c> one after the other
/// in one run, each with one expert node: PD split (one prefill node, one decode node) and colocated (one node of
/// role both). Mixed workload: short streaming requests decode continuously while long prompts keep arriving;
/// reported is the gap between consecutive tokens of the short requests (p50/p99/max), which is what a long
/// prefill disturbs. Then time to first token for a long prefix seen for the first time against the same prefix
/// again (a prefix cache hit), on each setup.
/// </summary>
public static class PdBench
{
    /// <summary>Every setup: one expert node, prompts prefilled in chunks of 256 tokens.</summary>
    private static readonly string[] Options = ["--expert-nodes", "1", "--prefill-chunk", "256"];
    private const int ShortClients = 3, ShortPrompt = 24, ShortTokens = 48, LongPrompt = 2000, PrefixRounds = 3;

    public static async Task<int> Run(string[] args)
    {
        double seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 20;
        string? model = args.Length > 1 ? args[1] : BenchEnvironment.TryFindRepoRoot() is { } root ? Path.Combine(root, "models", "small") : null;
        if (model is null || !File.Exists(Path.Combine(model, "config.json")))
        {
            Console.Error.WriteLine($"pd bench: no model at {model ?? "models/small"} (run './cluster demo' once, or give: pd SECONDS MODEL_DIR)");
            return 1;
        }
        var results = new List<(string Setup, Mixed Mixed, Prefix Prefix)>();
        foreach (var (name, layout) in new[]
        {
            ("PD split (1 prefill + 1 decode node)", new[] { "--prefill-nodes", "1", "--decode-nodes", "1" }),
            ("colocated (1 node, role both)", new[] { "--attention-nodes", "1" }),
        })
        {
            Console.Error.WriteLine($"pd bench: {name}");
            int[] ports = Cluster.Cli.Supervision.FreePorts.Take(2);
            using var up = ClusterUpProcess.Start(model, ports[0], ports[1], [.. Options, .. layout]);
            try
            {
                await ClusterUpProcess.WaitReadyAsync(up, TimeSpan.FromMinutes(5));
                using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
                var api = new CompletionClient(http, $"http://127.0.0.1:{ports[0]}");
                await api.StreamAsync(Prompt(0, ShortPrompt, 1), 4);
                await api.StreamAsync(Prompt(0, LongPrompt, 2), 1);
                Mixed mixed = await MixedAsync(api, seconds);
                Prefix prefix = await PrefixAsync(api);
                results.Add((name, mixed, prefix));
            }
            finally { ClusterUpProcess.Stop(up); }
        }

        Console.WriteLine("## Prefill/decode disaggregation");
        Console.WriteLine();
        Console.WriteLine($"Small preset, one expert node, `cluster up` per setup, one after the other in one run; {Environment.ProcessorCount} cores shared by every process; load average {BenchEnvironment.LoadAverage()} at the end.");
        Console.WriteLine($"Mixed workload for {seconds:0} s: {ShortClients} clients stream {ShortPrompt}-token prompts with {ShortTokens} output tokens back to back, while one client sends {LongPrompt}-token prompts (all different, 1 output token) back to back.");
        Console.WriteLine("Token gap = time between consecutive streamed tokens of the short requests (the time per output token running requests see).");
        Console.WriteLine();
        Console.WriteLine("| setup | token gap p50 ms | token gap p99 ms | token gap max ms | short requests | long prompts prefilled | short TTFT p50 ms |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var (setup, m, _) in results)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {setup} | {Pct(m.Gaps, 0.5):F1} | {Pct(m.Gaps, 0.99):F1} | {m.Gaps[^1]:F1} | {m.ShortRequests} | {m.LongRequests} | {Pct(m.ShortTtft, 0.5):F0} |"));
        if (results.Count == 2)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| PD / colocated | {Pct(results[0].Mixed.Gaps, 0.5) / Pct(results[1].Mixed.Gaps, 0.5):F2}x | {Pct(results[0].Mixed.Gaps, 0.99) / Pct(results[1].Mixed.Gaps, 0.99):F2}x | | | | |"));
        Console.WriteLine();
        Console.WriteLine($"Time to first token of a {LongPrompt}-token prompt, median of {PrefixRounds} prefixes: first time (uncached), then the same {LongPrompt - 8} leading tokens with another ending (cached):");
        Console.WriteLine();
        Console.WriteLine("| setup | uncached TTFT ms | cached TTFT ms | cached prompt tokens | uncached / cached |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var (setup, _, p) in results)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {setup} | {p.Uncached:F0} | {p.Cached:F0} | {p.CachedTokens} | {p.Uncached / p.Cached:F1}x |"));
        return 0;
    }

    private sealed record Mixed(double[] Gaps, double[] ShortTtft, int ShortRequests, int LongRequests);

    private sealed record Prefix(double Uncached, double Cached, int CachedTokens);

    private static async Task<Mixed> MixedAsync(CompletionClient api, double seconds)
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var gaps = new List<double>();
        var ttft = new List<double>();
        int shortRequests = 0, longRequests = 0, n = 1000;
        var shorts = Enumerable.Range(0, ShortClients).Select(c => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                StreamedCompletion s = await api.StreamAsync(Prompt(Interlocked.Increment(ref n), ShortPrompt, 3), ShortTokens);
                lock (gaps)
                {
                    for (int i = 1; i < s.TokenTimes.Count; i++) gaps.Add(s.TokenTimes[i] - s.TokenTimes[i - 1]);
                    ttft.Add(s.TokenTimes[0]);
                    shortRequests++;
                }
            }
        })).ToList();
        var longs = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await api.StreamAsync(Prompt(Interlocked.Increment(ref n), LongPrompt, 4), 1);
                Interlocked.Increment(ref longRequests);
            }
        });
        await Task.WhenAll([.. shorts, longs]);
        return new Mixed([.. gaps.Order()], [.. ttft.Order()], shortRequests, longRequests);
    }

    private static async Task<Prefix> PrefixAsync(CompletionClient api)
    {
        var uncached = new List<double>();
        var cached = new List<double>();
        int cachedTokens = 0;
        for (int r = 0; r < PrefixRounds; r++)
        {
            uint[] first = Prompt(50_000 + r, LongPrompt, 5), second = (uint[])first.Clone();
            for (int i = LongPrompt - 8; i < LongPrompt; i++) second[i] = first[i] + 1;
            uncached.Add((await api.StreamAsync(first, 1)).TokenTimes[0]);
            StreamedCompletion hit = await api.StreamAsync(second, 1);
            cached.Add(hit.TokenTimes[0]);
            cachedTokens = hit.CachedTokens;
        }
        return new Prefix(Median(uncached), Median(cached), cachedTokens);
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    private static double Pct(double[] sorted, double q) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];

    /// <summary>Distinct ordinary vocabulary ids after BOS, deterministic per (n, salt).</summary>
    private static uint[] Prompt(int n, int length, int salt)
    {
        var ids = new uint[length];
        for (int i = 1; i < ids.Length; i++) ids[i] = (uint)(1000 + ((long)n * 7919 + (long)i * 104729 + salt * 15485863L) % 100_000);
        return ids;
    }
}
