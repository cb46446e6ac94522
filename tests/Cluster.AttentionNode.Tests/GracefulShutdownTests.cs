using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Grpc.Health.V1;

namespace Cluster.AttentionNode.Tests;

/// <summary>
/// Shutdown as Kubernetes' termination expects: the node turns NOT_SERVING and refuses new requests with UNAVAILABLE
/// (the gateway places them elsewhere), while a request already streaming finishes with every token it asked for.
/// </summary>
public class GracefulShutdownTests
{
    [Fact]
    public async Task ARunningRequestFinishesWhileNewOnesAreRefused()
    {
        AttentionHost host = await AttentionHost.StartAsync(new AttentionOptions
        {
            ModelDir = TinyModel.Directory, NodeId = "attention-drain", DrainTimeout = TimeSpan.FromSeconds(60),
        });
        using var channel = PeerChannel.ForAddress($"http://127.0.0.1:{host.Port}");
        var client = new Protos.V1.AttentionService.AttentionServiceClient(channel.Invoker);
        const uint tokens = 400;
        using var running = client.Generate(new TokenGenerateRequest { PromptTokenIds = { TinyModel.Prompt(3, 6) }, Sampling = new() { MaxTokens = tokens } });
        Assert.True(await running.ResponseStream.MoveNext());

        Task stopping = host.DisposeAsync().AsTask();
        var health = new Health.HealthClient(channel.Invoker);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
        var refused = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var late = client.Generate(new TokenGenerateRequest { PromptTokenIds = { TinyModel.Prompt(4, 6) }, Sampling = new() { MaxTokens = 4 } });
            await late.ResponseStream.MoveNext();
        });
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Equal("attention node attention-drain is shutting down", refused.Status.Detail);
        Assert.False(stopping.IsCompleted, "the node stopped while a request was running");

        int received = 1;
        TokenEvent last = running.ResponseStream.Current;
        while (await running.ResponseStream.MoveNext())
        {
            received++;
            last = running.ResponseStream.Current;
        }
        Assert.NotEqual("", last.FinishReason);
        Assert.True(last.FinishReason == "stop" || received == tokens, $"the request ended after {received} tokens with {last.FinishReason}");
        await stopping.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
