using System.Text.Json;
using Cluster.Tests;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Transport.Tests;

/// <summary>Runs node/client_cases.js (grpc-js 1.14 as the client) against our server once, then checks each case.</summary>
public sealed class GrpcJsClientRun : IAsyncLifetime
{
    public TestServer Server { get; } = new();
    public Dictionary<string, (bool Ok, string? Detail)> Results { get; } = [];
    public Task<string> BidiCancelled { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Server.InitializeAsync();
        // What the script's health cases expect: the server serving, its echo service drained.
        Server.RoleHealth.MarkServing();
        Server.HealthService.SetStatus("cluster.v1.Echo", ServingStatus.NotServing);
        BidiCancelled = Server.NextCancellation(TestServer.BidiMethod);
        string output = await Task.Run(() => Repo.RunNode(Path.Combine(Repo.Root, "tests/Cluster.Transport.Tests/node/client_cases.js"), stdin: Server.Target, timeoutMs: 120_000));
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            Results[root.GetProperty("case").GetString()!] = (root.GetProperty("ok").GetBoolean(), root.TryGetProperty("detail", out var d) ? d.GetString() : null);
        }
    }

    public Task DisposeAsync() => Server.DisposeAsync();
}

public class GrpcJsClientInteropTests(GrpcJsClientRun run) : IClassFixture<GrpcJsClientRun>
{
    [Theory]
    [InlineData("unary")]
    [InlineData("serverStream")]
    [InlineData("clientStream")]
    [InlineData("bidi")]
    [InlineData("deadlineExceeded")]
    [InlineData("cancelMidStream")]
    [InlineData("errorWithBinaryMetadata")]
    [InlineData("threeMegabytes")]
    [InlineData("overLimitRequest")]
    [InlineData("overLimitReply")]
    [InlineData("gzip")]
    [InlineData("healthCheck")]
    [InlineData("healthWatch")]
    [InlineData("unimplemented")]
    [InlineData("tensorExchange")]
    public void Case(string name)
    {
        Assert.True(run.Results.TryGetValue(name, out var result), $"case {name} did not report; got: {string.Join(", ", run.Results.Keys)}");
        Assert.True(result.Ok, $"{name}: {result.Detail}");
    }

    [Fact]
    public async Task ClientCancelMidStreamCancelsOurHandler()
    {
        await Task.WhenAny(run.BidiCancelled, Task.Delay(TimeSpan.FromSeconds(20)));
        Assert.True(run.BidiCancelled.IsCompleted, "cancellations seen: " + string.Join(", ", run.Server.Cancellations));
    }
}
