using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cluster.Tests;
using k8s.Models;
using Xunit.Abstractions;

namespace Cluster.Helm.Tests;

/// <summary>
/// The render run as pods (<see cref="RenderedPodRunner"/>): one gateway, one attention node and two expert nodes of
/// the small preset (the tiny one's vocabulary cannot hold the chat template's tokens), each in its own network namespace with its own address, finding the others only by the DNS
/// names the chart writes (the gateway's node lists, the plan init container's endpoints). The containers' grpc
/// probes answer SERVING, the chart's `helm test` pod and a client in the root namespace get chat completions
/// through the gateway Service, and an expert pod killed with SIGKILL and restarted in place (same command, same
/// namespace and address, as the kubelet restarts a container) serves again: a completion after it succeeds. The
/// same render with clusterTls serves over TLS.
/// </summary>
public sealed class PodsRunTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly string _work = Directory.CreateTempSubdirectory("cluster-pods-").FullName;

    public void Dispose() => Directory.Delete(_work, true);

    [Fact]
    public async Task TheRenderedPodsServeAChatCompletionAndAnExpertPodRestartsInPlace()
    {
        if (!PodNetworkGate.Available(output)) return;
        var manifests = RenderSmallCluster("");

        using var network = new PodNetwork();
        using var runner = new RenderedPodRunner(manifests, network, _work, "llm", "cluster.local");
        var servers = await StartServersAsync(runner);
        Assert.Equal(["rel-cluster-attention-0", "rel-cluster-expert-0", "rel-cluster-expert-1", "rel-cluster-gateway-pod0"], servers.Select(p => p.Name).Order());
        var (url, hook) = await AssertServedAsync(manifests, runner, servers);

        var expert = servers.Single(p => p.Name == "rel-cluster-expert-0");
        expert.Container!.Kill();
        await expert.Container.WaitForExitAsync();
        string down = Repo.RunNode(ProbeScript, expert.ProbeTarget, timeoutMs: 30_000);
        Assert.Contains("\"error\"", down);
        // Most of expert-0's experts have no replica elsewhere: the request that finds the node gone is refused as
        // unavailable (the attention node then probes the node until it is back).
        var (status, refused) = await ChatAsync(url);
        Assert.True(status == HttpStatusCode.ServiceUnavailable, $"{(int)status}: {refused}");
        runner.StartContainer(expert);
        await WaitServingAsync(runner, servers);
        // The attention node's probe of a down expert node runs every 200 ms: until it sees the restarted pod a
        // request is still refused as unavailable, never failed otherwise.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        int refusals = 0;
        while (true)
        {
            (status, refused) = await ChatAsync(url);
            if (status == HttpStatusCode.OK) break;
            Assert.True(status == HttpStatusCode.ServiceUnavailable, $"{(int)status}: {refused}");
            Assert.True(DateTime.UtcNow < deadline, "no completion within 10 s of the expert pod's restart: " + refused);
            refusals++;
            await Task.Delay(200);
        }
        output.WriteLine($"requests refused after the restarted expert pod was SERVING: {refusals}");
        await AssertChatAsync(url);
        Assert.True(await runner.RunPodToCompletionAsync(hook, Patience) == 0, "the helm test pod failed after the restart:\n" + runner.Logs(hook));
    }

    /// <summary>
    /// With clusterTls the nodes' gRPC ports speak TLS with the chart's generated certificate (the Secret's files in
    /// each pod's volume, CLUSTER_TLS_DIR naming them): the nodes pass their HTTP probes, the gateway its grpc ones,
    /// completions flow through gateway, attention node and expert nodes, and a cleartext client, such as the
    /// kubelet's grpc probe, gets no answer from a node's gRPC port.
    /// </summary>
    [Fact]
    public async Task TheRenderedPodsServeOverClusterTls()
    {
        if (!PodNetworkGate.Available(output)) return;
        var manifests = RenderSmallCluster("clusterTls: { enabled: true }");

        using var network = new PodNetwork();
        using var runner = new RenderedPodRunner(manifests, network, _work, "llm", "cluster.local");
        var servers = await StartServersAsync(runner);
        var nodes = servers.Where(p => p.Labels["cluster.example.com/role"] != "gateway").ToList();
        Assert.Equal(3, nodes.Count);
        Assert.All(nodes, p => Assert.NotNull(p.ReadinessUrl));
        await AssertServedAsync(manifests, runner, servers);

        string cleartext = string.Join('\n', nodes.Select(p => $"{p.Net.Address}:{p.Spec.Containers.Single().Ports.Single(x => x.Name == "grpc").ContainerPort}"));
        foreach (string line in Repo.RunNode(ProbeScript, cleartext, timeoutMs: 60_000).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            Assert.Contains("\"error\"", line);
    }

    /// <summary>The chart for the small preset: one attention pod of role both, two expert pods, one gateway; plus <paramref name="extraValues"/>.</summary>
    private RenderedManifests RenderSmallCluster(string extraValues)
    {
        string values = Path.Combine(_work, "values.yaml");
        File.WriteAllText(values, """
            model: { dir: small, demo: { preset: small } }
            attention: { mode: both, both: { replicas: 1 }, kvCacheBytes: 64MiB }
            experts: { replicas: 2 }
            gateway: { replicas: 1 }

            """ + extraValues + "\n");
        return RenderedManifests.Parse(ChartRenderer.Render(values));
    }

    private static string ProbeScript => Path.Combine(Repo.Root, "tests/Shared/node/role_probe.js");

    /// <summary>Schedules the rendered pods and starts every server pod (those with a startup probe) until each passes its readiness probe.</summary>
    private static async Task<List<RenderedPodRunner.RunningPod>> StartServersAsync(RenderedPodRunner runner)
    {
        runner.Schedule();
        var servers = runner.Pods.Where(p => p.Spec.Containers.Single().StartupProbe is not null).ToList();
        await Task.WhenAll(servers.Select(p => Task.Run(() => runner.StartAsync(p, Patience))));
        await WaitServingAsync(runner, servers);
        return servers;
    }

    /// <summary>A chat completion through the gateway's Service, then the chart's helm test pod; the Service URL and the hook pod.</summary>
    private static async Task<(string Url, RenderedPodRunner.RunningPod Hook)> AssertServedAsync(RenderedManifests manifests, RenderedPodRunner runner, List<RenderedPodRunner.RunningPod> servers)
    {
        var gateway = servers.Single(p => p.Labels["cluster.example.com/role"] == "gateway");
        string url = GatewayServiceUrl(manifests, gateway);
        await AssertChatAsync(url);
        var hook = runner.Pods.Single(p => p.Name == "rel-cluster-test-chat");
        Assert.True(await runner.RunPodToCompletionAsync(hook, Patience) == 0, "the helm test pod failed:\n" + runner.Logs(hook));
        return (url, hook);
    }

    /// <summary>
    /// The kubelet's readiness probes on every pod, from outside the pods, until each passes: grpc probes answer
    /// SERVING, HTTP ones 200.
    /// </summary>
    private static async Task WaitServingAsync(RenderedPodRunner runner, List<RenderedPodRunner.RunningPod> pods)
    {
        var deadline = DateTime.UtcNow + Patience;
        var pending = pods.ToDictionary(p => p.ReadinessUrl ?? p.ProbeTarget);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        while (true)
        {
            string[] grpc = [.. pending.Values.Where(p => p.ReadinessUrl is null).Select(p => p.ProbeTarget)];
            if (grpc.Length > 0)
                foreach (string line in Repo.RunNode(ProbeScript, string.Join('\n', grpc), timeoutMs: 30_000).Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    using var r = JsonDocument.Parse(line);
                    if (r.RootElement.TryGetProperty("health", out var h) && h.GetString() == "SERVING") pending.Remove(r.RootElement.GetProperty("target").GetString()!);
                }
            foreach (string url in pending.Values.Select(p => p.ReadinessUrl).OfType<string>().ToList())
            {
                try
                {
                    using var response = await http.GetAsync(url);
                    if (response.StatusCode == HttpStatusCode.OK) pending.Remove(url);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
            }
            if (pending.Count == 0) return;
            var dead = pending.Values.FirstOrDefault(p => p.Container!.HasExited);
            Assert.True(dead is null, $"pod {dead?.Name} exited before SERVING:\n{(dead is null ? "" : runner.Logs(dead))}");
            Assert.True(DateTime.UtcNow < deadline, "not SERVING in time: " + string.Join("\n", pending.Values.Select(p => $"{p.Name}:\n{runner.Logs(p)}")));
            await Task.Delay(500);
        }
    }

    /// <summary>The gateway Service's http port, as the Service routes it: its targetPort on the backing pod.</summary>
    private static string GatewayServiceUrl(RenderedManifests m, RenderedPodRunner.RunningPod gateway)
    {
        V1ServicePort port = m.Of<V1Service>().Single(s => s.Metadata.Name == "rel-cluster-gateway").Spec.Ports.Single(p => p.Name == "http");
        int target = gateway.Spec.Containers.Single().Ports.Single(p => p.Name == port.TargetPort.Value).ContainerPort;
        return $"http://{gateway.Net.Address}:{target}";
    }

    private static async Task<(HttpStatusCode Status, string Body)> ChatAsync(string url)
    {
        using var http = new HttpClient { Timeout = Patience };
        using var response = await http.PostAsJsonAsync($"{url}/v1/chat/completions",
            new { model = "small", max_tokens = 4, messages = new[] { new { role = "user", content = "Hello" } } });
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static async Task AssertChatAsync(string url)
    {
        var (status, text) = await ChatAsync(url);
        Assert.True(status == HttpStatusCode.OK, $"{(int)status}: {text}");
        using var answer = JsonDocument.Parse(text);
        Assert.Equal("chat.completion", answer.RootElement.GetProperty("object").GetString());
        Assert.InRange(answer.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 1, 4);
    }
}
