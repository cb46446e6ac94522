using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Cluster.Tests;
using Grpc.Core;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// <c>cluster up</c> as a real process tree on the tiny preset: serves over HTTP (with role-both nodes, and split into
/// prefill and decode nodes that <c>cluster status</c> shows), stops every child, reports a dead one.
/// </summary>
public sealed class ClusterUpProcessTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(180);
    private readonly string _model = Directory.CreateTempSubdirectory("cluster-up-test-model-").FullName;

    public ClusterUpProcessTests()
    {
        foreach (string f in Directory.GetFiles(TinyModel.Directory)) File.Copy(f, Path.Combine(_model, Path.GetFileName(f)));
        string tokenizer = Path.Combine(Repo.NodeModules, "@lenml", "tokenizer-deepseek_v3", "models");
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(tokenizer, f), Path.Combine(_model, f));
    }

    public void Dispose() => Directory.Delete(_model, true);

    [Fact]
    public async Task ServesARequestAndSigtermStopsEveryChild()
    {
        using var up = await UpProcess.StartReadyAsync(Patience, _model);
        int[] children = up.ChildPids();
        Assert.Equal(4, children.Length);
        // The two expert nodes split this machine's cores for their kernel threads; the attention node keeps them all.
        string threads = $"--threads {Math.Max(1, Environment.ProcessorCount / 2)} ";
        Assert.Equal(2, children.Count(p => UpProcess.CommandLine(p) is var line && line.Contains("serve expert", StringComparison.Ordinal) && line.Contains(threads, StringComparison.Ordinal)));
        Assert.DoesNotContain(children, p => UpProcess.CommandLine(p) is var line && line.Contains("serve attention", StringComparison.Ordinal) && line.Contains("--threads", StringComparison.Ordinal));

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var body = new StringContent("""{"model":"m","prompt":[0,5,6,7],"max_tokens":4}""".Replace("\"m\"", JsonSerializer.Serialize(Path.GetFileName(_model))), Encoding.UTF8, "application/json");
        using var response = await http.PostAsync($"http://127.0.0.1:{up.HttpPort}/v1/completions", body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        using var json = JsonDocument.Parse(text);
        Assert.Equal(4, json.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        ProbeEveryRoleWithGrpcJs(up.Stdout);
        await InternalServicesAskForTheClusterTokenAsync(up.Stdout);
        await ExpertNodesExposeMetricsAsync(http, up.Stdout);

        Assert.Equal(0, up.Signal("TERM"));
        Assert.Equal(0, await up.WaitExitAsync(TimeSpan.FromSeconds(30)));
        foreach (int pid in children) Assert.False(UpProcess.Alive(pid), $"child {pid} outlived cluster up");
    }

    /// <summary>A process's locked memory (VmLck in /proc/PID/status), in kB.</summary>
    private static long LockedKb(int pid)
    {
        string line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmLck:", StringComparison.Ordinal));
        return long.Parse(line["VmLck:".Length..].Trim().TrimEnd('B').TrimEnd('k').Trim(), CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Every expert node `cluster up` started answers GET /metrics on the HTTP port it printed, in Prometheus' text
    /// format: the frames it served for the request above (a histogram of their service time), its rows, and the rows
    /// of each hosted expert, whose sum is its rows.
    /// </summary>
    private static async Task ExpertNodesExposeMetricsAsync(HttpClient http, string stdout)
    {
        var urls = Regex.Matches(stdout, @"^\S+\s+expert\s+\S+\s+(http://\S+/metrics)", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(2, urls.Count);
        double frames = 0;
        foreach (string url in urls)
        {
            using var response = await http.GetAsync(url);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
            string text = await response.Content.ReadAsStringAsync();
            Assert.Contains("# TYPE cluster_expert_dispatch_frame_seconds histogram", text);
            double Value(string series) => double.Parse(Regex.Match(text, "^" + Regex.Escape(series) + @"(?:\{[^}]*\})? (\S+)$", RegexOptions.Multiline).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            frames += Value("cluster_expert_dispatch_frame_seconds_count");
            double slots = Regex.Matches(text, @"^cluster_expert_slot_rows_total\{[^}]*\} (\S+)$", RegexOptions.Multiline)
                .Sum(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(Value("cluster_expert_rows_total"), slots);
            Assert.Contains("cluster_grpc_server_handled_total{grpc_method=\"/cluster.v1.ExpertService/GetInfo\"", text);
        }
        Assert.True(frames > 0, "no expert node served a dispatch frame for the request");
    }

    /// <summary>
    /// Inter-node trust: every internal service `cluster up` started (attention, expert, the gateway's Control)
    /// refuses a caller without the token it printed the file of (UNAUTHENTICATED), and serves one that presents it;
    /// the public Inference API needs no token (it is the API keys' business).
    /// </summary>
    private static async Task InternalServicesAskForTheClusterTokenAsync(string stdout)
    {
        string tokenFile = Regex.Match(stdout, @"^cluster token:\s+(\S+)", RegexOptions.Multiline).Groups[1].Value;
        Cluster.Transport.ClusterToken token = Cluster.Transport.ClusterToken.Load(tokenFile)!;
        string attention = Regex.Match(stdout, @"^\S+\s+both attention\s+(\S+)", RegexOptions.Multiline).Groups[1].Value;
        string expert = Regex.Match(stdout, @"^\S+\s+expert\s+(\S+)", RegexOptions.Multiline).Groups[1].Value;
        string gateway = Regex.Match(stdout, @"^gRPC Inference:\s+(?:http://)?(\S+)", RegexOptions.Multiline).Groups[1].Value;
        foreach (var withToken in new[] { false, true })
        {
            var options = new Cluster.Transport.GrpcClientOptions { Resilience = null, ClusterToken = withToken ? token : null };
            using var a = Cluster.Transport.PeerChannel.ForAddress($"http://{attention}", options);
            using var e = Cluster.Transport.PeerChannel.ForAddress($"http://{expert}", options);
            using var g = Cluster.Transport.PeerChannel.ForAddress($"http://{gateway}", options);
            var calls = new (string What, Func<Task> Call)[]
            {
                ("attention GetStats", () => new Protos.V1.AttentionService.AttentionServiceClient(a.Invoker).GetStatsAsync(new Protos.V1.GetStatsRequest()).ResponseAsync),
                ("expert GetInfo", () => new Protos.V1.ExpertService.ExpertServiceClient(e.Invoker).GetInfoAsync(new Protos.V1.GetExpertInfoRequest()).ResponseAsync),
                ("gateway Control", () => new Protos.V1.Control.ControlClient(g.Invoker).GetExpertsAsync(new Protos.V1.GetExpertsRequest()).ResponseAsync),
            };
            foreach (var (what, call) in calls)
            {
                if (withToken) await call();
                else Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(call)).StatusCode);
            }
            await new Protos.V1.Inference.InferenceClient(g.Invoker).ListModelsAsync(new Protos.V1.ListModelsRequest());
        }
    }

    /// <summary>
    /// What operators' tools see on every role `cluster up` printed (gateway, attention and expert nodes): grpc-js's
    /// health check answers SERVING, and server reflection lists the role's service beside health and reflection.
    /// </summary>
    private static void ProbeEveryRoleWithGrpcJs(string stdout)
    {
        var expected = new Dictionary<string, string[]>();
        foreach (string line in stdout.Split('\n'))
        {
            if (Regex.Match(line, @"^gRPC Inference:\s+(?:http://)?(\S+)") is { Success: true } gateway) expected[gateway.Groups[1].Value] = ["cluster.v1.Control", "cluster.v1.Inference"];
            else if (Regex.Match(line, @"^\S+\s+(?:both|prefill|decode) attention\s+(\S+)") is { Success: true } attention) expected[attention.Groups[1].Value] = ["cluster.v1.AttentionService", "cluster.v1.PlanAgent"];
            else if (Regex.Match(line, @"^\S+\s+expert\s+(\S+)") is { Success: true } expert) expected[expert.Groups[1].Value] = ["cluster.v1.ExpertService"];
        }
        Assert.True(expected.Count == 4, $"expected the gateway, one attention and two expert endpoints in:\n{stdout}");
        string output = Repo.RunNode(Path.Combine(Repo.Root, "tests/Shared/node/role_probe.js"), string.Join('\n', expected.Keys), timeoutMs: 60_000);
        var seen = new HashSet<string>();
        foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var probe = JsonDocument.Parse(line);
            string target = probe.RootElement.GetProperty("target").GetString()!;
            Assert.False(probe.RootElement.TryGetProperty("error", out var error), $"{target}: {error}");
            Assert.Equal("SERVING", probe.RootElement.GetProperty("health").GetString());
            string[] services = [.. probe.RootElement.GetProperty("services").EnumerateArray().Select(e => e.GetString()!)];
            Assert.Equal([.. expected[target], "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"], services.Where(n => n != "grpc.reflection.v1.ServerReflection").Order(StringComparer.Ordinal));
            seen.Add(target);
        }
        Assert.Equal(expected.Count, seen.Count);
    }

    /// <summary>
    /// As a kubelet would: with every expert on two nodes, an expert node killed with SIGKILL while 8 streams run is
    /// restarted, and every stream completes with the tokens of a run without the kill (exact mode).
    /// </summary>
    [Fact]
    public async Task AKilledExpertNodeIsRestartedAndWithTwoReplicasNoStreamLosesAToken()
    {
        using var up = await UpProcess.StartReadyAsync(Patience, _model, "--expert-nodes", "3", "--expert-replicas", "2", "--redundant-experts", "0",
            "--dispatch", "f32", "--kv-cache-dtype", "f32");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(120) };
        string model = JsonSerializer.Serialize(Path.GetFileName(_model));
        int chunks = 0;
        async Task<string> Stream(int i)
        {
            var body = new StringContent($$"""{"model":{{model}},"prompt":[0,{{5 + i}},6,7],"max_tokens":64,"temperature":0,"stream":true}""", Encoding.UTF8, "application/json");
            using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{up.HttpPort}/v1/completions") { Content = body };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var text = new StringBuilder();
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: {", StringComparison.Ordinal)) continue;
                using var chunk = JsonDocument.Parse(line.AsMemory(6));
                Assert.False(chunk.RootElement.TryGetProperty("error", out var error), $"stream {i} failed: {error}");
                text.Append(chunk.RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
                Interlocked.Increment(ref chunks);
            }
            return text.ToString();
        }
        string[] healthy = await Task.WhenAll(Enumerable.Range(0, 8).Select(Stream));

        int expert = up.ChildPids().Single(p => UpProcess.CommandLine(p).Contains("--node-id expert-1", StringComparison.Ordinal));
        int before = Volatile.Read(ref chunks);
        Task<string>[] running = [.. Enumerable.Range(0, 8).Select(Stream)];
        var until = DateTime.UtcNow.AddSeconds(60);
        while (Volatile.Read(ref chunks) < before + 8 * 4 && DateTime.UtcNow < until) await Task.Delay(5);
        Process.GetProcessById(expert).Kill();
        string[] degraded = await Task.WhenAll(running);
        Assert.Equal(healthy, degraded);

        until = DateTime.UtcNow.AddSeconds(120);
        while (!up.Stderr.Contains("expert-1 is back", StringComparison.Ordinal) && DateTime.UtcNow < until) await Task.Delay(100);
        Assert.Contains("restarting expert-1 in 1 s (restart 1)", up.Stderr);
        Assert.Contains("expert-1 is back", up.Stderr);
        Assert.Equal(healthy[0], await Stream(0));
        Assert.Contains(up.ChildPids(), p => p != expert && UpProcess.CommandLine(p).Contains("--node-id expert-1", StringComparison.Ordinal));
    }

    /// <summary>
    /// The attention node and the gateway are supervised like the expert nodes: each one killed is restarted on its
    /// ports, serves again, and counts the restart in GET /cluster/status (what `cluster status` prints).
    /// </summary>
    [Fact]
    public async Task AKilledAttentionNodeAndGatewayAreRestartedAndStatusCountsTheRestarts()
    {
        using var up = await UpProcess.StartReadyAsync(Patience, _model);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        string model = JsonSerializer.Serialize(Path.GetFileName(_model));
        async Task<JsonElement> StatusAsync()
        {
            using var response = await http.GetAsync($"http://127.0.0.1:{up.HttpPort}/cluster/status");
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, text);
            return JsonDocument.Parse(text).RootElement.Clone();
        }
        async Task CompleteAsync()
        {
            var body = new StringContent($$"""{"model":{{model}},"prompt":[0,5,6,7],"max_tokens":4}""", Encoding.UTF8, "application/json");
            using var response = await http.PostAsync($"http://127.0.0.1:{up.HttpPort}/v1/completions", body);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }
        async Task KillAndAwaitRestartAsync(string name, string commandLine)
        {
            int pid = up.ChildPids().Single(p => UpProcess.CommandLine(p).Contains(commandLine, StringComparison.Ordinal));
            Process.GetProcessById(pid).Kill();
            var until = DateTime.UtcNow.AddSeconds(120);
            while (!up.Stderr.Contains($"{name} is back", StringComparison.Ordinal) && DateTime.UtcNow < until) await Task.Delay(100);
            Assert.True(up.Stderr.Contains($"{name} is back", StringComparison.Ordinal), up.Stderr);
        }

        JsonElement start = await StatusAsync();
        Assert.Equal(0, start.GetProperty("gateway").GetProperty("restarts").GetInt32());
        Assert.Equal(0, start.GetProperty("nodes")[0].GetProperty("restarts").GetInt32());

        await KillAndAwaitRestartAsync("attention-0", "--node-id attention-0");
        // The gateway sees the node again once its readiness probe passes.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        JsonElement node;
        while ((node = (await StatusAsync()).GetProperty("nodes")[0]).GetProperty("state").GetString() != "ok" && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal("attention-0", node.GetProperty("node_id").GetString());
        Assert.Equal(1, node.GetProperty("restarts").GetInt32());
        await CompleteAsync();

        await KillAndAwaitRestartAsync("gateway", "serve gateway");
        JsonElement after = await StatusAsync();
        Assert.Equal(1, after.GetProperty("gateway").GetProperty("restarts").GetInt32());
        Assert.Equal(1, after.GetProperty("nodes")[0].GetProperty("restarts").GetInt32());
        await CompleteAsync();
    }

    [Fact]
    public async Task WithFailFastADyingExpertNodeIsReportedAndTheRestStop()
    {
        using var up = await UpProcess.StartReadyAsync(Patience, _model, "--expert-nodes", "2", "--redundant-experts", "1", "--fail-fast");
        int[] children = up.ChildPids();
        int expert = children.Single(p => UpProcess.CommandLine(p).Contains("--node-id expert-1", StringComparison.Ordinal));
        Process.GetProcessById(expert).Kill();

        Assert.Equal(1, await up.WaitExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("expert-1", up.Stderr);
        Assert.Contains("exited with code", up.Stderr);
        foreach (int pid in children) Assert.False(UpProcess.Alive(pid), $"child {pid} outlived cluster up");
    }

    [Fact]
    public async Task ChildrenDoNotOutliveAKilledSupervisor()
    {
        using var up = await UpProcess.StartReadyAsync(Patience, _model);
        int[] children = up.ChildPids();
        Assert.Equal(0, up.Signal("KILL"));
        // No signal reaches the children; each sees its standard input close and shuts down.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (children.Any(UpProcess.Alive) && DateTime.UtcNow < deadline) await Task.Delay(100);
        foreach (int pid in children) Assert.False(UpProcess.Alive(pid), $"child {pid} outlived a killed cluster up");
    }

    /// <summary>
    /// <c>cluster up --cluster-tls</c>: every internal hop (gateway to prefill and decode nodes, KV transfer, dispatch to
    /// the expert node) runs over TLS from the generated CA, and a request is served; the nodes' gRPC ports refuse
    /// cleartext, and over TLS without the token a call is still UNAUTHENTICATED.
    /// </summary>
    [Fact]
    public async Task WithClusterTlsEveryInternalHopSpeaksTlsAndARequestIsServed()
    {
        using var up = await UpProcess.StartReadyAsync(Patience, _model, "--prefill-nodes", "1", "--decode-nodes", "1", "--expert-nodes", "1", "--cluster-tls");
        string tlsDir = Regex.Match(up.Stdout, @"^cluster TLS:\s+(\S+)", RegexOptions.Multiline).Groups[1].Value;
        Assert.True(File.Exists(Path.Combine(tlsDir, "ca.crt")), up.Stdout);
        using (JsonDocument json = await CompleteSixTokensAsync(up.HttpPort))
            Assert.Equal(4, json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var tls = Cluster.Transport.ClusterTls.Load(tlsDir)!;
        Cluster.Transport.ClusterToken plain = Cluster.Transport.ClusterToken.Parse(up.Token.Value, "token");
        foreach (string role in new[] { "expert", "prefill attention", "decode attention" })
        {
            string endpoint = Regex.Match(up.Stdout, $@"^\S+\s+{role}\s+(\S+)", RegexOptions.Multiline).Groups[1].Value;
            using var cleartext = Cluster.Transport.PeerChannel.ForAddress($"http://{endpoint}", new Cluster.Transport.GrpcClientOptions { Resilience = null, ClusterToken = plain });
            using var noToken = Cluster.Transport.PeerChannel.ForAddress($"https://{endpoint}", new Cluster.Transport.GrpcClientOptions { Resilience = null, ServerCertificateValidation = tls.Validate });
            using var member = Cluster.Transport.PeerChannel.ForAddress($"http://{endpoint}", new Cluster.Transport.GrpcClientOptions { Resilience = null, ClusterToken = plain.WithTls(tls) });
            Func<Cluster.Transport.PeerChannel, Task> call = role == "expert"
                ? c => new Protos.V1.ExpertService.ExpertServiceClient(c.Invoker).GetInfoAsync(new Protos.V1.GetExpertInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync
                : c => new Protos.V1.AttentionService.AttentionServiceClient(c.Invoker).GetStatsAsync(new Protos.V1.GetStatsRequest(), deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync;
            Assert.NotEqual(StatusCode.OK, (await Assert.ThrowsAsync<RpcException>(() => call(cleartext))).StatusCode);
            Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => call(noToken))).StatusCode);
            await call(member);
        }

        Assert.Equal(0, up.Signal("TERM"));
        Assert.Equal(0, await up.WaitExitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task PrefillAndDecodeNodesServeARequestThatStatusShows()
    {
        // --lock-weights needs root (CAP_IPC_LOCK) or a memory-lock limit above the weights; CI runs as root.
        bool locking = Environment.IsPrivilegedProcess;
        using var up = await UpProcess.StartReadyAsync(Patience, _model, ["--prefill-nodes", "1", "--decode-nodes", "1", "--expert-nodes", "1", .. locking ? ["--lock-weights"] : Array.Empty<string>()]);
        Assert.Equal(4, up.ChildPids().Length);
        // With it the three nodes hold their weights locked into memory; the gateway has none.
        foreach (int pid in locking ? up.ChildPids() : [])
        {
            long locked = LockedKb(pid);
            if (UpProcess.CommandLine(pid).Contains("serve gateway", StringComparison.Ordinal)) Assert.Equal(0, locked);
            else Assert.True(locked > 0, $"{UpProcess.CommandLine(pid)}: VmLck {locked} kB");
        }
        Match prefillLine = Regex.Match(up.Stdout, @"(?m)^prefill-0 +prefill attention +127\.0\.0\.1:\d+ +(http://127\.0\.0\.1:\d+)/metrics$");
        Assert.True(prefillLine.Success, up.Stdout);
        Assert.Matches(@"(?m)^decode-0 +decode attention +127\.0\.0\.1:\d+ +http://127\.0\.0\.1:\d+/metrics$", up.Stdout);
        Assert.DoesNotContain("attention-0", up.Stdout);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        using (JsonDocument json = await CompleteSixTokensAsync(up.HttpPort))
        {
            JsonElement usage = json.RootElement.GetProperty("usage");
            Assert.Equal(6, usage.GetProperty("prompt_tokens").GetInt32());
            Assert.Equal(4, usage.GetProperty("completion_tokens").GetInt32());
        }
        // Each node's own HTTP statistics port, as a Prometheus scraper reads it.
        string metrics = await http.GetStringAsync(prefillLine.Groups[1].Value + "/metrics");
        Assert.Contains("cluster_attention_prompt_tokens_total{node=\"prefill-0\",role=\"prefill\"} 6\n", metrics);
        // Its dispatch round trips to the one expert node (one per MoE layer of the prefill at least), buckets cumulative.
        Match roundTrips = Regex.Match(metrics, @"(?m)^cluster_attention_dispatch_round_trip_seconds_count\{expert_node=""expert-0""\} (\d+)$");
        Assert.True(roundTrips.Success, metrics);
        Assert.True(int.Parse(roundTrips.Groups[1].Value, CultureInfo.InvariantCulture) >= 1, roundTrips.Value);
        Assert.Contains($"cluster_attention_dispatch_round_trip_seconds_bucket{{expert_node=\"expert-0\",le=\"+Inf\"}} {roundTrips.Groups[1].Value}\n", metrics);

        var (code, stdout, stderr) = RunCluster("status", "--gateway", $"http://127.0.0.1:{up.HttpPort}", "--json");
        Assert.True(code == 0, stderr);
        using (var status = JsonDocument.Parse(stdout))
        {
            var nodes = status.RootElement.GetProperty("nodes").EnumerateArray().ToDictionary(n => n.GetProperty("node_id").GetString()!);
            Assert.Equal(["decode-0", "prefill-0"], nodes.Keys.Order(StringComparer.Ordinal));
            JsonElement prefill = nodes["prefill-0"], decode = nodes["decode-0"];
            Assert.Equal(("prefill", "ok"), (prefill.GetProperty("role").GetString(), prefill.GetProperty("state").GetString()));
            Assert.Equal(("decode", "ok"), (decode.GetProperty("role").GetString(), decode.GetProperty("state").GetString()));
            Assert.Equal(6ul, prefill.GetProperty("prompt_tokens").GetUInt64());
            Assert.True(prefill.GetProperty("kv_bytes_sent").GetUInt64() > 0, stdout);
            Assert.True(decode.GetProperty("kv_bytes_received").GetUInt64() > 0, stdout);
            Assert.Equal(0, status.RootElement.GetProperty("gateway").GetProperty("queued").GetInt32());
        }

        (code, stdout, stderr) = RunCluster("status", "--gateway", $"http://127.0.0.1:{up.HttpPort}");
        Assert.True(code == 0, stderr);
        Assert.Matches(@"(?m)^prefill-0 +prefill +ok ", stdout);
        Assert.Matches(@"(?m)^decode-0 +decode +ok ", stdout);
        Assert.Matches(@"(?m)^gateway: 0 queued, \d+ in flight, 0 restarts$", stdout);

        Assert.Equal(0, up.Signal("TERM"));
        Assert.Equal(0, await up.WaitExitAsync(TimeSpan.FromSeconds(30)));
    }

    [Theory]
    [InlineData("--dispatch fp16", "--dispatch must be bf16, fp8 or f32")]
    [InlineData("--model /nonexistent/model", "/nonexistent/model: no config.json")]
    [InlineData("--port 9000 --grpc-port 9000", "--port and --grpc-port are both 9000")]
    [InlineData("--expert-nodes 2 --redundant-experts 1000", "--redundant-experts 1000 is more than 2 nodes can hold")]
    [InlineData("--nodes 3", "--nodes")]
    [InlineData("--prefill-nodes 2", "--prefill-nodes and --decode-nodes go together")]
    [InlineData("--kv-cache-bytes 1GB", "--kv-cache-bytes must be a size")]
    public void BadOptionsAreOneLineErrors(string options, string message)
    {
        string[] args = options.Split(' ');
        if (!options.Contains("--model", StringComparison.Ordinal)) args = ["--model", _model, .. args];
        var (code, _, stderr) = RunCluster(["up", .. args]);
        Assert.NotEqual(0, code);
        Assert.Contains(message, stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    /// <summary>One `cluster` command to its end: exit code, stdout, stderr.</summary>
    /// <summary>A greedy completion of a 6-token prompt, 4 tokens long, through the gateway's HTTP API.</summary>
    private async Task<JsonDocument> CompleteSixTokensAsync(int httpPort)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var body = new StringContent("""{"model":"m","prompt":[0,5,6,7,8,9],"max_tokens":4,"temperature":0}""".Replace("\"m\"", JsonSerializer.Serialize(Path.GetFileName(_model))), Encoding.UTF8, "application/json");
        using var response = await http.PostAsync($"http://127.0.0.1:{httpPort}/v1/completions", body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text);
    }

    private static (int Code, string Stdout, string Stderr) RunCluster(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Repo.Root };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "cluster.dll") }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync(), stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), "cluster " + string.Join(' ', args));
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The running `cluster up` child process, its output, and its children as /proc lists them.</summary>
    internal sealed class UpProcess : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _stdout = new(), _stderr = new();
        private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private UpProcess(Process process, int httpPort)
        {
            _process = process;
            HttpPort = httpPort;
        }

        public int HttpPort { get; }
        public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }
        /// <summary>The cluster token `cluster up` made, from the file it printed (the nodes' internal services ask for it).</summary>
        public Cluster.Transport.ClusterToken Token =>
            Cluster.Transport.ClusterToken.Load(Regex.Match(Stdout, @"^cluster token:\s+(\S+)", RegexOptions.Multiline).Groups[1].Value)!;
        public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

        /// <summary>`cluster up` on free ports with <paramref name="layout"/>; by default 2 expert nodes and 1 redundant expert.</summary>
        /// <summary>
        /// Starts `cluster up` and waits until it serves, starting again on other ports when a port it was given was
        /// taken in between (free ports are picked before the processes bind them, and parallel tests bind too).
        /// </summary>
        public static async Task<UpProcess> StartReadyAsync(TimeSpan patience, string model, params string[] layout)
        {
            for (int attempt = 1; ; attempt++)
            {
                var up = Start(model, layout);
                try
                {
                    await up.WaitReadyAsync(patience);
                    return up;
                }
                catch (Exception) when (attempt < 3 && up.Stderr.Contains("address already in use", StringComparison.Ordinal))
                {
                    up.Dispose();
                }
            }
        }

        public static UpProcess Start(string model, params string[] layout)
        {
            int[] ports = FreeLoopbackPorts(2);
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Repo.Root };
            if (layout.Length == 0) layout = ["--expert-nodes", "2", "--redundant-experts", "1"];
            foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "cluster.dll"), "up", "--model", model, "--port", $"{ports[0]}", "--grpc-port", $"{ports[1]}" }.Concat(layout))
                psi.ArgumentList.Add(a);
            var up = new UpProcess(Process.Start(psi)!, ports[0]);
            up._process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (up._stdout) up._stdout.AppendLine(e.Data);
                if (e.Data.StartsWith("Ctrl-C stops", StringComparison.Ordinal)) up._ready.TrySetResult();
            };
            up._process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (up._stderr) up._stderr.AppendLine(e.Data); };
            up._process.BeginOutputReadLine();
            up._process.BeginErrorReadLine();
            return up;
        }

        public async Task WaitReadyAsync(TimeSpan patience)
        {
            Task exited = _process.WaitForExitAsync();
            Task first = await Task.WhenAny(_ready.Task, exited, Task.Delay(patience));
            Assert.True(first == _ready.Task, $"cluster up did not become ready:\n{Stdout}\n{Stderr}");
        }

        public async Task<int> WaitExitAsync(TimeSpan patience)
        {
            using var timeout = new CancellationTokenSource(patience);
            await _process.WaitForExitAsync(timeout.Token);
            return _process.ExitCode;
        }

        public int Signal(string name)
        {
            using var kill = Process.Start("kill", ["-" + name, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            kill.WaitForExit();
            return kill.ExitCode;
        }

        public int[] ChildPids()
        {
            var pids = new List<int>();
            foreach (string dir in Directory.GetDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
                try
                {
                    string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
                    string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    if (int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) == _process.Id) pids.Add(pid);
                }
                catch (IOException) { }
            }
            return [.. pids];
        }

        public static string CommandLine(int pid) => File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');

        /// <summary>Running, not a zombie waiting to be reaped.</summary>
        public static bool Alive(int pid)
        {
            try
            {
                string stat = File.ReadAllText($"/proc/{pid}/stat");
                return stat[stat.LastIndexOf(')') + 2] != 'Z';
            }
            catch (IOException) { return false; }
        }

        private static int[] FreeLoopbackPorts(int count)
        {
            var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToArray();
            foreach (var l in listeners) l.Start();
            int[] ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
            foreach (var l in listeners) l.Stop();
            return ports;
        }

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.Dispose();
        }
    }
}
