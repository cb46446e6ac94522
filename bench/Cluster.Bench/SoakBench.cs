using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Cluster.Bench;

/// <summary>
/// Hours of a production day squeezed into minutes, against `cluster up` on the small preset (real processes):
/// clients mixing short and long chat prompts, streamed and whole answers, streams cancelled part way and a share of
/// bad requests (malformed JSON, wrong types, unknown models, prompts past the context). Every answer must be what
/// its request deserves (200 for good ones, 4xx in OpenAI's shape for bad ones); the resident memory of every role is
/// sampled throughout and must stay flat after warm-up (growth under 5%); at the end every node must be idle with every
/// cache block back (blocks_available = blocks_total in /cluster/status). Exit code 1 if any of that fails.
/// </summary>
public static class SoakBench
{
    private const int Clients = 6;
    private const double MaxGrowth = 0.05;

    private enum Kind { StreamedChat, WholeChat, Completion, Cancelled, Bad }

    public static async Task<int> Run(string[] args)
    {
        double minutes = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 10;
        var duration = TimeSpan.FromMinutes(minutes);
        var warmUp = TimeSpan.FromSeconds(Math.Min(120, duration.TotalSeconds / 5));
        string dir = Directory.CreateTempSubdirectory("cluster-soak-bench-").FullName;
        Process? up = null;
        try
        {
            string model = Path.Combine(dir, "small");
            Console.Error.WriteLine($"soak: writing the small preset to {model}");
            Cli("model", "init", "--preset", "small", "--out", model);
            int[] ports = Cluster.Cli.Supervision.FreePorts.Take(2);
            up = ClusterUpProcess.Start(model, ports[0], ports[1]);
            await ClusterUpProcess.WaitReadyAsync(up, TimeSpan.FromMinutes(3));
            string endpoint = $"http://127.0.0.1:{ports[0]}";
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
            string modelId = JsonDocument.Parse(await http.GetStringAsync($"{endpoint}/v1/models")).RootElement.GetProperty("data")[0].GetProperty("id").GetString()!;
            var roles = Roles(up.Id);
            Console.Error.WriteLine($"soak: {roles.Count} role processes; {Clients} clients for {minutes} min (warm-up {warmUp.TotalSeconds:0} s)");

            var counts = new int[Enum.GetValues<Kind>().Length];
            var unexpected = new List<string>();
            var memory = new Dictionary<int, List<(double Seconds, Resident Rss)>>();
            foreach (var r in roles) memory[r.Pid] = [];
            var clock = Stopwatch.StartNew();
            using var stop = new CancellationTokenSource(duration);
            var clients = new Task[Clients];
            for (int c = 0; c < Clients; c++)
            {
                var rng = new Random(1000 + c);
                clients[c] = Task.Run(async () =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        Kind kind = Pick(rng);
                        string? error = await OneAsync(http, endpoint, modelId, kind, rng);
                        Interlocked.Increment(ref counts[(int)kind]);
                        if (error is not null) lock (unexpected) unexpected.Add($"{clock.Elapsed.TotalSeconds:0}s {kind}: {error}");
                    }
                });
            }
            int lastReport = 0;
            while (!stop.IsCancellationRequested)
            {
                foreach (var r in roles) memory[r.Pid].Add((clock.Elapsed.TotalSeconds, Rss(r.Pid)));
                if ((int)clock.Elapsed.TotalMinutes > lastReport)
                {
                    lastReport = (int)clock.Elapsed.TotalMinutes;
                    Console.Error.WriteLine($"soak: {lastReport} min, {counts.Sum()} requests, {unexpected.Count} unexpected");
                }
                try { await Task.Delay(5000, stop.Token); } catch (OperationCanceledException) { }
            }
            await Task.WhenAll(clients);
            foreach (var r in roles) memory[r.Pid].Add((clock.Elapsed.TotalSeconds, Rss(r.Pid)));

            var (blocksOk, blocksLine) = await CacheReturnedAsync(http, endpoint);
            Console.WriteLine($"## Soak (bench soak {minutes.ToString(CultureInfo.InvariantCulture)})");
            Console.WriteLine();
            Console.WriteLine($"`cluster up` on the small preset ({roles.Count} role processes), {Clients} clients back to back for {minutes} min on 2 cores; load average {BenchEnvironment.LoadAverage()} at the end.");
            Console.WriteLine();
            Console.WriteLine("| requests | streamed chat | whole chat | completions | cancelled streams | bad (4xx expected) | unexpected answers |");
            Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
            Console.WriteLine($"| {counts.Sum()} | {counts[0]} | {counts[1]} | {counts[2]} | {counts[3]} | {counts[4]} | {unexpected.Count} |");
            Console.WriteLine();
            Console.WriteLine($"| role | resident MB after warm-up ({warmUp.TotalSeconds:0} s) | peak MB after | at the end MB | growth | anonymous MB, growth | file-backed MB, growth |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
            bool flat = true;
            foreach (var r in roles)
            {
                var after = memory[r.Pid].Where(s => s.Seconds >= warmUp.TotalSeconds).Select(s => s.Rss).ToList();
                if (after.Count == 0) continue;
                (double start, double end) = Growth(after.Select(a => a.Total).ToList());
                double growth = end / start - 1;
                flat &= growth < MaxGrowth;
                // Which kind of page grew: anonymous (heaps, native buffers) or file-backed (mapped weights, code).
                (double anonStart, double anonEnd) = Growth(after.Select(a => a.Anonymous).ToList());
                (double fileStart, double fileEnd) = Growth(after.Select(a => a.FileBacked).ToList());
                Console.WriteLine($"| {r.Name} | {start / 1e6:0.0} | {after.Max(a => a.Total) / 1e6:0.0} | {end / 1e6:0.0} | {growth * 100:+0.0;-0.0;0.0}% "
                    + $"| {anonStart / 1e6:0.0} -> {anonEnd / 1e6:0.0}, {(anonEnd / anonStart - 1) * 100:+0.0;-0.0;0.0}% | {fileStart / 1e6:0.0} -> {fileEnd / 1e6:0.0}, {(fileEnd / fileStart - 1) * 100:+0.0;-0.0;0.0}% |");
            }
            Console.WriteLine();
            Console.WriteLine($"Cache at the end: {blocksLine}.");
            foreach (string u in unexpected.Take(10)) Console.WriteLine($"- unexpected: {u}");
            bool ok = unexpected.Count == 0 && flat && blocksOk;
            Console.WriteLine();
            Console.WriteLine(ok ? "Result: pass (no unexpected answer, memory flat, every block back)." : "Result: FAIL.");
            return ok ? 0 : 1;
        }
        finally
        {
            if (up is not null) ClusterUpProcess.Stop(up);
            Directory.Delete(dir, recursive: true);
        }
    }

    private static Kind Pick(Random rng) => rng.Next(100) switch
    {
        < 35 => Kind.StreamedChat,
        < 55 => Kind.WholeChat,
        < 70 => Kind.Completion,
        < 85 => Kind.Cancelled,
        _ => Kind.Bad,
    };

    private static readonly string[] Words = ["the", "cluster", "serves", "experts", "latent", "cache", "tokens", "a", "model", "of", "mixture", "routing", "node", "gateway", "stream"];

    private static string Prompt(Random rng)
    {
        // Mostly short prompts with a long tail, as chat traffic has.
        int words = rng.Next(10) == 0 ? rng.Next(150, 400) : rng.Next(3, 40);
        var text = new StringBuilder();
        for (int i = 0; i < words; i++) text.Append(Words[rng.Next(Words.Length)]).Append(' ');
        return text.ToString();
    }

    /// <summary>Sends one request of <paramref name="kind"/>; null when the answer is what it deserves, else what was wrong.</summary>
    private static async Task<string?> OneAsync(HttpClient http, string endpoint, string modelId, Kind kind, Random rng)
    {
        int maxTokens = rng.Next(1, 24);
        object chat = new { model = modelId, max_tokens = maxTokens, temperature = rng.Next(2) == 0 ? 0 : 0.8, stream = kind is Kind.StreamedChat or Kind.Cancelled, messages = new[] { new { role = "user", content = Prompt(rng) } } };
        try
        {
            switch (kind)
            {
                case Kind.StreamedChat:
                case Kind.Cancelled:
                {
                    using var cancel = new CancellationTokenSource();
                    using var request = new HttpRequestMessage(HttpMethod.Post, $"{endpoint}/v1/chat/completions") { Content = Json(JsonSerializer.Serialize(chat)) };
                    using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
                    if (response.StatusCode != HttpStatusCode.OK) return $"HTTP {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));
                    int events = 0, cutAt = kind == Kind.Cancelled ? 1 + rng.Next(3) : int.MaxValue;
                    bool done = false;
                    while (await reader.ReadLineAsync(cancel.Token) is { } line)
                    {
                        if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                        if (line.Contains("\"error\"")) return $"error event {line}";
                        if (line == "data: [DONE]") { done = true; break; }
                        if (++events >= cutAt) { cancel.Cancel(); return null; }
                    }
                    return done || kind == Kind.Cancelled ? null : "the stream ended without [DONE]";
                }
                case Kind.WholeChat:
                {
                    using var response = await http.PostAsync($"{endpoint}/v1/chat/completions", Json(JsonSerializer.Serialize(chat)));
                    string text = await response.Content.ReadAsStringAsync();
                    return response.StatusCode == HttpStatusCode.OK && text.Contains("\"choices\"") ? null : $"HTTP {(int)response.StatusCode} {text}";
                }
                case Kind.Completion:
                {
                    string body = JsonSerializer.Serialize(new { model = modelId, prompt = Prompt(rng), max_tokens = maxTokens, temperature = 0 });
                    using var response = await http.PostAsync($"{endpoint}/v1/completions", Json(body));
                    string text = await response.Content.ReadAsStringAsync();
                    return response.StatusCode == HttpStatusCode.OK ? null : $"HTTP {(int)response.StatusCode} {text}";
                }
                default:
                {
                    string m = JsonSerializer.Serialize(modelId);
                    string[] bad =
                    [
                        "{\"model\":" + m + ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}",
                        "{\"model\":" + m + ",\"max_tokens\":\"ten\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        "{\"model\":\"no-such-model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        "{\"model\":" + m + ",\"temperature\":7,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        // Past any context DeepSeek-V3 has (163,840 positions).
                        "{\"model\":" + m + ",\"max_tokens\":1,\"prompt\":[" + string.Join(',', Enumerable.Repeat(0, 170_000)) + "]}",
                        "[1,2,3]",
                    ];
                    int which = rng.Next(bad.Length);
                    string path = which == 4 ? "/v1/completions" : "/v1/chat/completions";
                    using var response = await http.PostAsync($"{endpoint}{path}", Json(bad[which]));
                    string text = await response.Content.ReadAsStringAsync();
                    int status = (int)response.StatusCode;
                    return status is >= 400 and < 500 && text.Contains("\"error\"") ? null : $"HTTP {status} {text[..Math.Min(200, text.Length)]}";
                }
            }
        }
        catch (OperationCanceledException) when (kind == Kind.Cancelled) { return null; }
        catch (Exception e) { return $"{e.GetType().Name}: {e.Message}"; }
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>Waits (up to 30 s) until every node is idle, then checks that every cache block can be reserved again.</summary>
    private static async Task<(bool, string)> CacheReturnedAsync(HttpClient http, string endpoint)
    {
        string line = "";
        for (int attempt = 0; attempt < 60; attempt++)
        {
            using var status = JsonDocument.Parse(await http.GetStringAsync($"{endpoint}/cluster/status"));
            bool ok = true;
            var parts = new List<string>();
            foreach (var node in status.RootElement.GetProperty("nodes").EnumerateArray())
            {
                uint total = node.GetProperty("blocks_total").GetUInt32(), available = node.GetProperty("blocks_available").GetUInt32();
                uint running = node.GetProperty("running").GetUInt32(), queued = node.GetProperty("queued").GetUInt32();
                ok &= available == total && running == 0 && queued == 0;
                parts.Add($"{node.GetProperty("node_id").GetString()} {available}/{total} blocks available, {running} running, {queued} queued");
            }
            line = string.Join("; ", parts);
            if (ok) return (true, line);
            await Task.Delay(500);
        }
        return (false, line);
    }

    /// <summary>The role processes `cluster up` started: its children, named by their `serve` role and node id.</summary>
    private static List<(int Pid, string Name)> Roles(int upPid)
    {
        var roles = new List<(int, string)>();
        foreach (string task in Directory.GetDirectories($"/proc/{upPid}/task"))
        {
            string children = Path.Combine(task, "children");
            if (!File.Exists(children)) continue;
            foreach (string pid in File.ReadAllText(children).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                string[] argv = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
                int serve = Array.IndexOf(argv, "serve");
                int id = Array.IndexOf(argv, "--node-id");
                string name = serve >= 0 && serve + 1 < argv.Length ? argv[serve + 1] : Path.GetFileName(argv[0]);
                if (id >= 0 && id + 1 < argv.Length) name += " " + argv[id + 1];
                roles.Add((int.Parse(pid, CultureInfo.InvariantCulture), name));
            }
        }
        return roles;
    }

    /// <summary>The first sample after the warm-up, and the median of the last quarter (so one sample taken mid-request does not decide).</summary>
    private static (double Start, double End) Growth(List<long> samples)
    {
        var tail = samples.Skip(samples.Count * 3 / 4).Order().ToList();
        return (samples[0], tail[tail.Count / 2]);
    }

    /// <summary>Resident bytes of a process: in all, anonymous, and file-backed and shared memory.</summary>
    private readonly record struct Resident(long Total, long Anonymous, long FileBacked);

    private static Resident Rss(int pid)
    {
        long total = 0, anonymous = 0, file = 0;
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) total = Kilobytes(line);
                else if (line.StartsWith("RssAnon:", StringComparison.Ordinal)) anonymous = Kilobytes(line);
                else if (line.StartsWith("RssFile:", StringComparison.Ordinal)) file += Kilobytes(line);
                else if (line.StartsWith("RssShmem:", StringComparison.Ordinal)) file += Kilobytes(line);
            }
        }
        catch (IOException) { }
        return new Resident(total, anonymous, file);
    }

    private static long Kilobytes(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;

    private static void Cli(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "cluster.dll"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"cluster {string.Join(' ', args)}: {err}");
    }
}
