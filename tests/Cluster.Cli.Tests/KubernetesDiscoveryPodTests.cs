using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;
using Xunit.Abstractions;

namespace Cluster.Cli.Tests;

/// <summary>
/// `cluster serve gateway --discovery kubernetes` in pods: every role in its own network namespace
/// (<see cref="PodNetwork"/>), the gateway following a headless Service's name through the pod's system resolver,
/// whose records (the pod's /etc/hosts, a stand-in for cluster DNS) list the Service's ready pods. A pod that joins
/// the records is picked up and served from; one that leaves is dropped before the next request, so killing it
/// afterwards costs no request; no records at all (NXDOMAIN) is an empty pool that refuses with a clear error until a
/// pod is back.
/// </summary>
public sealed class KubernetesDiscoveryPodTests(ITestOutputHelper output)
{
    private const string Service = "attention.cluster.svc.cluster.local";
    private const int NodePort = 9000, HttpPort = 8000;

    [Fact]
    public async Task The_gateway_follows_the_headless_services_records_across_namespaces()
    {
        if (!PodNetworkGate.Available(output)) return;
        ModelConfig config = SyntheticModel.ConfigFor(SyntheticPresets.Tiny with { VocabSize = SyntheticPresets.Small.VocabSize }, DType.BF16);
        string modelDir = TestCheckpoints.Dir(config, 7, tokenizer: true);
        using var net = new PodNetwork();
        var gw = net.AddPod("gateway-0");
        var a1 = net.AddPod("attention-0");
        var a2 = net.AddPod("attention-1");
        net.SetRecords(Service, a1.Address);
        var processes = new List<(Process Process, StringBuilder Log)>();
        try
        {
            foreach (var (pod, id) in new[] { (a1, "attention-0"), (a2, "attention-1") })
                processes.Add(Start(net, pod, "serve", "attention", "--model", modelDir, "--host", "0.0.0.0", "--port", $"{NodePort}", "--http-port", "9100", "--node-id", id));
            processes.Add(Start(net, gw, "serve", "gateway", "--model", modelDir, "--host", "0.0.0.0", "--port", $"{HttpPort}", "--grpc-port", "8001",
                "--discovery", "kubernetes", "--attention-service", $"{Service}:{NodePort}", "--resolve-interval", "0.2"));
            using var http = new HttpClient { BaseAddress = new Uri($"http://{gw.Address}:{HttpPort}"), Timeout = TimeSpan.FromSeconds(30) };
            string Logs() => string.Join("\n---\n", processes.Select(p => p.Log.ToString()));

            await Until(async () => (await Try(() => http.GetAsync("/readyz")))?.StatusCode == HttpStatusCode.OK, "the gateway never became ready", Logs);
            Assert.Equal([$"{a1.Address}:{NodePort}"], await NodesAsync(http));
            await AssertServedAsync(http);

            // A pod joins the Service: used once it answers.
            net.SetRecords(Service, a1.Address, a2.Address);
            await Until(async () => (await NodesAsync(http)).Count == 2, "the second pod was never picked up", Logs);
            for (int i = 0; i < 6; i++) await AssertServedAsync(http);
            // A joined pod is ranked by its statistics once the gateway has polled them (every 2 s): requests keep
            // coming until it has served one, as they would in a cluster under traffic.
            await Until(async () =>
            {
                await AssertServedAsync(http);
                return await GeneratedAsync(http, a2) > 0;
            }, "the second pod never served a request", Logs);

            // A pod leaves the Service, then dies: no request is sent to it after the records drop it.
            net.SetRecords(Service, a2.Address);
            await Until(async () => (await NodesAsync(http)).SequenceEqual([$"{a2.Address}:{NodePort}"]), "the departed pod was never dropped", Logs);
            processes[0].Process.Kill(entireProcessTree: true);
            for (int i = 0; i < 4; i++) await AssertServedAsync(http);

            // No ready pod at all: the name does not resolve, the pool is empty, requests get a clear 503.
            net.SetRecords(Service);
            await Until(async () => (await NodesAsync(http)).Count == 0, "the pool never emptied", Logs);
            string model = JsonDocument.Parse(await http.GetStringAsync("/v1/models")).RootElement.GetProperty("data")[0].GetProperty("id").GetString()!;
            using (var refused = await http.PostAsync("/v1/completions", new StringContent($"{{\"model\":\"{model}\",\"prompt\":\"hello\",\"max_tokens\":2}}", Encoding.UTF8, "application/json")))
            {
                string text = await refused.Content.ReadAsStringAsync();
                Assert.True(refused.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)refused.StatusCode} {text}");
                Assert.Contains("\"error\"", text);
            }
            net.SetRecords(Service, a2.Address);
            await Until(async () => (await NodesAsync(http)).Count == 1, "the pod never came back", Logs);
            await AssertServedAsync(http);
        }
        finally
        {
            foreach (var (p, _) in processes) if (!p.HasExited) p.Kill(entireProcessTree: true);
        }
    }


    private static async Task AssertServedAsync(HttpClient http)
    {
        string model = JsonDocument.Parse(await http.GetStringAsync("/v1/models")).RootElement.GetProperty("data")[0].GetProperty("id").GetString()!;
        using var reply = await http.PostAsync("/v1/completions", new StringContent($"{{\"model\":\"{model}\",\"prompt\":\"hello\",\"max_tokens\":2}}", Encoding.UTF8, "application/json"));
        string text = await reply.Content.ReadAsStringAsync();
        Assert.True(reply.StatusCode == HttpStatusCode.OK, $"{(int)reply.StatusCode} {text}");
    }

    /// <summary>The attention nodes the gateway routes to now, by endpoint.</summary>
    private static async Task<List<string>> NodesAsync(HttpClient http)
    {
        using var status = JsonDocument.Parse(await http.GetStringAsync("/cluster/status"));
        var nodes = new List<string>();
        foreach (var n in status.RootElement.GetProperty("nodes").EnumerateArray()) nodes.Add(n.GetProperty("endpoint").GetString()!);
        nodes.Sort(StringComparer.Ordinal);
        return nodes;
    }

    private static async Task<ulong> GeneratedAsync(HttpClient http, PodNetwork.Pod pod)
    {
        using var status = JsonDocument.Parse(await http.GetStringAsync("/cluster/status"));
        foreach (var n in status.RootElement.GetProperty("nodes").EnumerateArray())
            if (n.GetProperty("endpoint").GetString() == $"{pod.Address}:{NodePort}") return n.GetProperty("generated_tokens").GetUInt64();
        return 0;
    }

    private static (Process, StringBuilder) Start(PodNetwork net, PodNetwork.Pod pod, params string[] args)
    {
        var psi = net.Exec(pod, "dotnet", [Path.Combine(AppContext.BaseDirectory, "cluster.dll"), .. args]);
        var p = Process.Start(psi)!;
        var log = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(pod.Name + ": " + e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(pod.Name + ": " + e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return (p, log);
    }

    private static async Task<HttpResponseMessage?> Try(Func<Task<HttpResponseMessage>> call)
    {
        try { return await call(); }
        catch (HttpRequestException) { return null; }
        catch (TaskCanceledException) { return null; }
    }

    private static async Task Until(Func<Task<bool>> condition, string why, Func<string> logs)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < until, why + ":\n" + logs());
            await Task.Delay(100);
        }
    }
}
