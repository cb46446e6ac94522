using Cluster.Engine.Cache;
using Cluster.Protos.V1;
using Grpc.Core;

namespace Cluster.AttentionNode.Tests;

/// <summary>The scheduler's refusals reach the caller as gRPC statuses, with the scheduler's message.</summary>
public sealed class FailureStatusTests
{
    [Fact]
    public async Task AContextLargerThanTheWholeCacheIsResourceExhaustedOnEveryPath()
    {
        const int blockSize = 16;
        long blockBytes = new LatentCacheManager(TinyModel.Config, new LatentCacheOptions { BlockSize = blockSize, BudgetBytes = 1 << 20 }).BlockBytes;
        await using var node = await TestNode.StartAsync("small", NodeRole.Both, o => o with { KvBlockSize = blockSize, KvCacheBytes = 2 * blockBytes });
        uint[] prompt = TinyModel.Prompt(110, 40);
        const string detail = "attention node small: kv cache too small: request needs 3 blocks, the cache has 2";

        var local = await Assert.ThrowsAsync<RpcException>(() => node.GenerateAsync(TestNode.Greedy(prompt, 4)));
        // Reserved before the prefill node is called.
        var remote = await Assert.ThrowsAsync<RpcException>(() => node.GenerateAsync(TestNode.Greedy(prompt, 4, node.Endpoint)));
        var prefill = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = new Protos.V1.AttentionService.AttentionServiceClient(node.Channel.Invoker)
                .Prefill(new PrefillRequest { Request = TestNode.Greedy(prompt, 4), DecodeNode = "test" }, deadline: DateTime.UtcNow + TimeSpan.FromSeconds(60));
            while (await call.ResponseStream.MoveNext()) { }
        });
        foreach (RpcException e in (RpcException[])[local, remote, prefill])
            Assert.Equal((StatusCode.ResourceExhausted, detail), (e.StatusCode, e.Status.Detail));
        Assert.Equal(0, node.Host.Caches.Stats().UsedBlocks);
    }
}
