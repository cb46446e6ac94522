using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Cluster.Cli.Supervision;
using Xunit.Abstractions;

namespace Cluster.Cli.Tests;

/// <summary>
/// The placement changes while `cluster up` serves, as real processes: 8 client streams run while
/// `cluster experts rebalance` and `cluster experts scale` change the plan; no request fails, in exact mode
/// (f32 cache and dispatch) every output equals the one before any change, and every node ends on the last version.
/// On a model with skewed experts (--expert-skew 1.2) the expert rows per node are measured under the start plan
/// and after the changes. Then a killed expert node comes back on the plan in use and reports its restart, a node is
/// drained under 8 streams and added back.
/// </summary>
public sealed class LivePlacementProcessTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _model = Directory.CreateTempSubdirectory("cluster-live-placement-").FullName;

    public void Dispose() => Directory.Delete(_model, true);

    private sealed class Up : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _log = new();
        private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Up(string model, params string[] layout)
        {
            int[] ports = FreePorts.Take(2);
            HttpPort = ports[0];
            Gateway = $"127.0.0.1:{ports[1]}";
            // cluster up writes a fresh token here; `cluster experts` needs it (the Control service is internal).
            TokenFile = Path.Combine(Path.GetTempPath(), $"cluster-token-{Environment.ProcessId}-{ports[0]}");
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, WorkingDirectory = ClusterProcess.RepoRoot };
            foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "cluster.dll"), "up", "--model", model, "--port", $"{ports[0]}", "--grpc-port", $"{ports[1]}", "--cluster-token-file", TokenFile }.Concat(layout))
                psi.ArgumentList.Add(a);
            _process = Process.Start(psi)!;
            _process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (_log) _log.AppendLine(e.Data);
                if (e.Data.StartsWith("Ctrl-C stops", StringComparison.Ordinal)) _ready.TrySetResult();
            };
            _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public int HttpPort { get; }
        public string TokenFile { get; }

        /// <summary>The pid of the child started with <c>--node-id <paramref name="nodeId"/></c>.</summary>
        public int ChildPid(string nodeId)
        {
            foreach (string dir in Directory.GetDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
                try
                {
                    string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    if (int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) != _process.Id) continue;
                    if (File.ReadAllText(Path.Combine(dir, "cmdline")).Contains($"--node-id\0{nodeId}\0", StringComparison.Ordinal)) return pid;
                }
                catch (IOException) { }
            }
            throw new InvalidOperationException($"no child {nodeId} of cluster up:\n{Log}");
        }
        public string Gateway { get; }
        public string Log { get { lock (_log) return _log.ToString(); } }

        public async Task WaitReadyAsync()
        {
            Task first = await Task.WhenAny(_ready.Task, _process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(180)));
            Assert.True(first == _ready.Task, $"cluster up did not become ready:\n{Log}");
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                kill.WaitForExit();
                if (!_process.WaitForExit(30_000)) _process.Kill(true);
            }
            _process.Dispose();
            File.Delete(TokenFile);
        }
    }

    private static int[] Prompt(int i) => [0, .. Enumerable.Range(0, 6 + i % 5).Select(j => 2 + (i * 131 + j * 17) % 1000)];

    private async Task<string> CompleteAsync(HttpClient http, Up up, int i)
    {
        string body = JsonSerializer.Serialize(new { model = Path.GetFileName(_model), prompt = Prompt(i), max_tokens = 24, temperature = 0 });
        using var response = await http.PostAsync($"http://127.0.0.1:{up.HttpPort}/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"request {i}: {(int)response.StatusCode} {text}");
        using var json = JsonDocument.Parse(text);
        return json.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
    }

    private static JsonElement Status(Up up)
    {
        var r = ClusterProcess.Run("experts", "status", "--gateway", up.Gateway, "--cluster-token-file", up.TokenFile, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement.Clone();
    }

    [Fact]
    public async Task With_a_rebalance_interval_the_gateway_rebalances_a_skewed_load_by_itself_and_changes_no_output()
    {
        var init = ClusterProcess.Run("model", "init", "--preset", "tiny", "--out", _model, "--seed", "3", "--expert-skew", "1.2", "--force");
        Assert.True(init.ExitCode == 0, init.Stderr);
        using var up = new Up(_model, "--expert-nodes", "3", "--redundant-experts", "2", "--kv-cache-dtype", "f32", "--dispatch", "f32",
            "--rebalance-interval", "1", "--rebalance-threshold", "1.05");
        await up.WaitReadyAsync();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(120) };
        const int requests = 24;
        var expected = new string[requests];
        await Parallel.ForAsync(0, requests, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) => expected[i] = await CompleteAsync(http, up, i));

        // Nobody asks: the gateway's next ticks see the skew and roll out a new plan.
        JsonElement status = Status(up);
        for (var deadline = DateTime.UtcNow.AddSeconds(60); status.GetProperty("plan_version").GetInt32() < 2 && DateTime.UtcNow < deadline; status = Status(up))
            await Task.Delay(500);
        Assert.True(status.GetProperty("plan_version").GetInt32() >= 2, $"no automatic rebalance within 60 s:\n{up.Log}");

        var again = new string[requests];
        await Parallel.ForAsync(0, requests, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) => again[i] = await CompleteAsync(http, up, i));
        Assert.Equal(expected, again);
        status = Status(up);
        double after = status.GetProperty("max_over_mean_rows").GetDouble();
        output.WriteLine($"plan version {status.GetProperty("plan_version").GetInt32()}, max/mean expert rows per node after the automatic rebalance {after:F3}");
        Assert.True(after <= 1.1, $"max/mean expert rows per node after the automatic rebalance {after:F3}");
        foreach (JsonElement node in status.GetProperty("nodes").EnumerateArray())
            Assert.Equal(status.GetProperty("plan_version").GetInt32(), node.GetProperty("plan_version").GetInt32());
    }

    [Fact]
    public async Task Rebalance_scale_drain_and_add_while_streams_run_fail_nothing_change_no_output_and_even_the_rows()
    {
        var init = ClusterProcess.Run("model", "init", "--preset", "tiny", "--out", _model, "--seed", "3", "--expert-skew", "1.2", "--force");
        Assert.True(init.ExitCode == 0, init.Stderr);
        using var up = new Up(_model, "--expert-nodes", "3", "--redundant-experts", "2", "--kv-cache-dtype", "f32", "--dispatch", "f32", "--max-batch", "16");
        await up.WaitReadyAsync();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(120) };

        // The start plan: reference outputs, and the rows each node computed for them.
        const int requests = 24;
        var expected = new string[requests];
        await Parallel.ForAsync(0, requests, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) => expected[i] = await CompleteAsync(http, up, i));
        JsonElement start = Status(up);
        Assert.Equal(1, start.GetProperty("plan_version").GetInt32());
        double before = start.GetProperty("max_over_mean_rows").GetDouble();

        // 8 streams loop over the same requests while the plan changes twice.
        using var stop = new CancellationTokenSource();
        int served = 0;
        Task[] streams = [.. Enumerable.Range(0, 8).Select(s => Task.Run(async () =>
        {
            for (int i = s; !stop.IsCancellationRequested || i < s + 2 * 8; i += 8)
            {
                Assert.Equal(expected[i % requests], await CompleteAsync(http, up, i % requests));
                Interlocked.Increment(ref served);
            }
        }))];
        await Task.Delay(500);
        var rebalance = ClusterProcess.Run("experts", "rebalance", "--gateway", up.Gateway, "--cluster-token-file", up.TokenFile);
        Assert.True(rebalance.ExitCode == 0, rebalance.Stderr + up.Log);
        output.WriteLine(rebalance.Stdout.Trim());
        Assert.StartsWith("plan version 1 -> 2", rebalance.Stdout);
        int afterRebalance = served;
        var scale = ClusterProcess.Run("experts", "scale", "--gateway", up.Gateway, "--cluster-token-file", up.TokenFile, "--redundant-experts", "4");
        Assert.True(scale.ExitCode == 0, scale.Stderr + up.Log);
        output.WriteLine(scale.Stdout.Trim());
        Assert.StartsWith("plan version 2 -> 3", scale.Stdout);
        await Task.Delay(500);
        stop.Cancel();
        await Task.WhenAll(streams);
        Assert.True(served > afterRebalance && afterRebalance > 0, $"{served} requests, {afterRebalance} before the scale change");

        JsonElement end = Status(up);
        Assert.Equal(3, end.GetProperty("plan_version").GetInt32());
        Assert.Equal(4, end.GetProperty("redundant_experts").GetInt32());
        foreach (JsonElement node in end.GetProperty("nodes").EnumerateArray())
        {
            Assert.Equal("serving", node.GetProperty("state").GetString());
            Assert.Equal(3, node.GetProperty("plan_version").GetInt32());
            Assert.Equal(0, node.GetProperty("restarts").GetInt32());
        }
        // `cluster status --json` carries the same beside the attention nodes' statistics.
        var status = ClusterProcess.Run("status", "--gateway", $"http://127.0.0.1:{up.HttpPort}", "--control", up.Gateway, "--cluster-token-file", up.TokenFile, "--json");
        Assert.True(status.ExitCode == 0, status.Stderr);
        JsonElement experts = JsonDocument.Parse(status.Stdout).RootElement.GetProperty("experts");
        Assert.Equal(3, experts.GetProperty("plan_version").GetInt32());
        Assert.Equal(3, experts.GetProperty("nodes").GetArrayLength());

        // Balance under the last plan (rebalanced on the skewed load) for the same requests as the start plan's.
        var again = new string[requests];
        await Parallel.ForAsync(0, requests, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) => again[i] = await CompleteAsync(http, up, i));
        Assert.Equal(expected, again);
        double after = Status(up).GetProperty("max_over_mean_rows").GetDouble();
        output.WriteLine($"max/mean expert rows per node: start plan {before:F3}, after the rebalance {after:F3}");
        Assert.True(after < before, $"max/mean expert rows per node: start plan {before:F3}, after {after:F3}");
        Assert.True(after <= 1.1, $"max/mean expert rows per node after the rebalance {after:F3}");

        // A node restarted now starts from the plan in use (its plan file was rewritten) and reports the restart.
        // Back means both: the supervisor restarted it, and the attention node probed it and routes to it again
        // (with one replica per expert, a request sent between the two fails for want of expert-1's experts).
        var usedAgain = new System.Text.RegularExpressions.Regex(@"expert node expert-1 \(\S+\) is back");
        int usedBefore = usedAgain.Matches(up.Log).Count;
        Process.GetProcessById(up.ChildPid("expert-1")).Kill();
        var until = DateTime.UtcNow.AddSeconds(90);
        while (!(up.Log.Contains("expert-1 is back", StringComparison.Ordinal) && usedAgain.Matches(up.Log).Count > usedBefore) && DateTime.UtcNow < until)
            await Task.Delay(200);
        Assert.Contains("expert-1 is back", up.Log);
        Assert.True(usedAgain.Matches(up.Log).Count > usedBefore, "the attention node never used expert-1 again:\n" + up.Log);
        JsonElement restarted = Status(up).GetProperty("nodes").EnumerateArray().Single(n => n.GetProperty("node_id").GetString() == "expert-1");
        Assert.Equal(1, restarted.GetProperty("restarts").GetInt32());
        Assert.Equal(3, restarted.GetProperty("plan_version").GetInt32());
        Assert.Equal("serving", restarted.GetProperty("state").GetString());
        var afterRestart = new string[requests];
        await Parallel.ForAsync(0, requests, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) => afterRestart[i] = await CompleteAsync(http, up, i));
        Assert.Equal(expected, afterRestart);

        // Drain expert-2 while the streams run: its experts go to the others and it computes no row after the switch;
        // then give it slots again (it still runs) and it serves.
        string endpoint2 = end.GetProperty("nodes").EnumerateArray().Single(n => n.GetProperty("node_id").GetString() == "expert-2").GetProperty("endpoint").GetString()!;
        var unknown = ClusterProcess.Run("experts", "drain", "--gateway", up.Gateway, "--cluster-token-file", up.TokenFile, "--node-id", "expert-9");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Equal("cluster experts drain: placement plan has no expert node 'expert-9' (nodes: expert-0, expert-1, expert-2) (FailedPrecondition)", unknown.Stderr.Trim());
        using (var stop2 = new CancellationTokenSource())
        {
            Task[] more = [.. Enumerable.Range(0, 8).Select(s => Task.Run(async () =>
            {
                for (int i = s; !stop2.IsCancellationRequested || i < s + 8; i += 8)
                    Assert.Equal(expected[i % requests], await CompleteAsync(http, up, i % requests));
            }))];
            await Task.Delay(300);
            var drain = ClusterProcess.Run("experts", "drain", "--gateway", up.Gateway, "--cluster-token-file", up.TokenFile, "--node-id", "expert-2");
            Assert.True(drain.ExitCode == 0, drain.Stderr + up.Log);
            Assert.StartsWith("plan version 3 -> 4", drain.Stdout);
            await Task.Delay(300);
            stop2.Cancel();
            await Task.WhenAll(more);
        }
        JsonElement drained = Status(up);
        Assert.Equal(4, drained.GetProperty("plan_version").GetInt32());
        Assert.DoesNotContain(drained.GetProperty("nodes").EnumerateArray(), n => n.GetProperty("node_id").GetString() == "expert-2");

        var add = ClusterProcess.Run("experts", "add", "--gateway", up.Gateway, "--cluster-token-file", up.TokenFile, "--node-id", "expert-2", "--endpoint", endpoint2);
        Assert.True(add.ExitCode == 0, add.Stderr + up.Log);
        Assert.StartsWith("plan version 4 -> 5", add.Stdout);
        var readded = new string[requests];
        await Parallel.ForAsync(0, requests, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) => readded[i] = await CompleteAsync(http, up, i));
        Assert.Equal(expected, readded);
        JsonElement node2 = Status(up).GetProperty("nodes").EnumerateArray().Single(n => n.GetProperty("node_id").GetString() == "expert-2");
        Assert.Equal(5, node2.GetProperty("plan_version").GetInt32());
        Assert.True(node2.GetProperty("rows_since_plan").GetInt64() > 0, "the node added back computes rows");
    }
}
