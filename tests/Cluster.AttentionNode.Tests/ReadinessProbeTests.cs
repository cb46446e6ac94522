using System.Text.Json;
using Cluster.ExpertNode.Host;
using Cluster.Tests;
using Cluster.Transport;
using Grpc.Core;
using Grpc.Health.V1;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// The health an operator's probe sees follows readiness: an attention node whose expert node is not up yet listens
/// and answers NOT_SERVING (to grpc-js as to our client), and SERVING once its dispatch stream is open and its model
/// loaded; shutting it down turns it NOT_SERVING before the port closes.
/// </summary>
public sealed class ReadinessProbeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-readiness-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public async Task AnAttentionNodeIsNotServingUntilItsExpertNodeAnswers()
    {
        int[] ports = Cli.Supervision.FreePorts.Take(2);
        int attentionPort = ports[1];
        var node = WaitingForExpert.Start(_dir, ports[0], attentionPort);
        string target = $"127.0.0.1:{attentionPort}";
        using var channel = PeerChannel.ForAddress($"http://{target}");
        var health = new Health.HealthClient(channel.Invoker);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, await FirstAnswerAsync(health));
        Assert.Equal("NOT_SERVING", Probe(target));
        Assert.False(node.Starting.IsCompleted);

        await using (ExpertHost expert = await node.StartExpertAsync())
        {
            AttentionHost host = await node.Starting.WaitAsync(TimeSpan.FromSeconds(120));
            Assert.Equal("SERVING", Probe(target));
            using var watch = health.Watch(new HealthCheckRequest());
            Assert.True(await watch.ResponseStream.MoveNext());
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, watch.ResponseStream.Current.Status);
            Task stopping = host.DisposeAsync().AsTask();
            // A watcher learns of the shutdown before the server goes away (or the stream ends with it).
            try
            {
                Assert.True(await watch.ResponseStream.MoveNext());
                Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, watch.ResponseStream.Current.Status);
            }
            finally
            {
                await stopping;
            }
        }
    }

    /// <summary>Checks until the node's port answers (it opens before the model loads).</summary>
    private static async Task<HealthCheckResponse.Types.ServingStatus> FirstAnswerAsync(Health.HealthClient health)
    {
        DateTime until = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try { return (await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(5))).Status; }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && DateTime.UtcNow < until) { await Task.Delay(50); }
        }
    }

    /// <summary>grpc-js's health check of the server, as Kubernetes' grpc probe asks it.</summary>
    private static string Probe(string target)
    {
        string line = Repo.RunNode(Path.Combine(Repo.Root, "tests/Shared/node/role_probe.js"), target, timeoutMs: 60_000).Trim();
        using var probe = JsonDocument.Parse(line);
        Assert.False(probe.RootElement.TryGetProperty("error", out var error), $"{target}: {error}");
        return probe.RootElement.GetProperty("health").GetString()!;
    }
}
