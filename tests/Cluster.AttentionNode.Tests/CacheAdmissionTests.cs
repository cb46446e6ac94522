using Cluster.AttentionNode.Scheduling;
using Cluster.Engine.Cache;

namespace Cluster.AttentionNode.Tests;

/// <summary>A request is admitted only while the cache can hold its whole context; a full cache refuses at once.</summary>
public sealed class CacheAdmissionTests
{
    [Fact]
    public async Task AFullCacheRefusesNamingTheNeedAndAdmitsOnceARequestFinishes()
    {
        var gate = new ManualResetEventSlim(false);
        var (model, checkpoint) = TinyModel.Load((_, inner) => new GatedExperts(inner, gate));
        using var _ = checkpoint;
        const int blockSize = 16, maxTokens = 12;
        // 20 prompt tokens + 12 generated = 2 blocks of 16: the budget holds two such requests.
        long blockBytes = new LatentCacheManager(model.Config, new LatentCacheOptions { BlockSize = blockSize, BudgetBytes = 1 << 20 }).BlockBytes;
        var options = new LatentCacheOptions { BlockSize = blockSize, BudgetBytes = 4 * blockBytes };
        await using var scheduler = SchedulerTests.Start(model, cache: options);
        Assert.Equal(4, scheduler.Caches.Stats().AvailableBlocks);
        try
        {
            // The engine stops inside the first prefill, so both requests are certainly live when the third comes.
            var first = scheduler.Submit(SchedulerTests.Request("first", TinyModel.Prompt(70, 20), maxTokens), CancellationToken.None);
            var second = scheduler.Submit(SchedulerTests.Request("second", TinyModel.Prompt(71, 20), maxTokens), CancellationToken.None);
            Assert.Equal(0, scheduler.Caches.Stats().AvailableBlocks);
            var e = Assert.Throws<GenerationFailure>(() => scheduler.Submit(SchedulerTests.Request("third", TinyModel.Prompt(72, 20), maxTokens), CancellationToken.None));
            Assert.Equal(GenerationFailureKind.ResourceExhausted, e.Kind);
            Assert.Equal("attention node test: kv cache full: request needs 2 blocks, 0 available", e.Message);

            gate.Set();
            Assert.Equal(maxTokens, (await SchedulerTests.ReadAll(first)).Count);
            Assert.True(scheduler.Caches.Stats().AvailableBlocks >= 2, "the finished request's blocks came back");
            var third = scheduler.Submit(SchedulerTests.Request("third", TinyModel.Prompt(72, 20), maxTokens), CancellationToken.None);
            Assert.Equal(maxTokens, (await SchedulerTests.ReadAll(second)).Count);
            Assert.Equal(maxTokens, (await SchedulerTests.ReadAll(third)).Count);
            LatentCacheStats stats = scheduler.Caches.Stats();
            Assert.Equal(0, stats.UsedBlocks);
            Assert.Equal(4, stats.AvailableBlocks);
        }
        finally { gate.Set(); }
    }

}
