using System.Threading.Channels;
using Cluster.AttentionNode.Scheduling;
using Cluster.Engine.Cache;
using Cluster.Engine.Model;
using Cluster.Engine.Sampling;
using Cluster.Protos.V1;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.AttentionNode.Tests;

public sealed class SchedulerTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    internal static BatchScheduler Start(Transformer model, int maxBatch = 8, int prefillChunk = 512, LatentCacheOptions? cache = null) =>
        new(model, new LatentCacheManager(model.Config, cache ?? new LatentCacheOptions()), new SchedulerOptions("test", maxBatch, prefillChunk),
            model.Config.VocabSize, model.Config.EosTokenIds, NullLogger.Instance);

    internal static int UsedBlocks(BatchScheduler scheduler) => scheduler.Caches.Stats().UsedBlocks;

    internal static GenerationRequest Request(string id, uint[] prompt, int maxTokens, SamplingOptions? sampling = null) =>
        new(id, Array.ConvertAll(prompt, p => (int)p), maxTokens, sampling ?? new SamplingOptions(), []);

    internal static async Task<List<TokenEvent>> ReadAll(ChannelReader<TokenEvent> events)
    {
        var list = new List<TokenEvent>();
        using var timeout = new CancellationTokenSource(Patience);
        await foreach (var e in events.ReadAllAsync(timeout.Token)) list.Add(e);
        return list;
    }

    /// <summary>The node's tokens are a prefix of the reference, ending only by length or at an EOS id.</summary>
    internal static void AssertMatchesGreedy(int[] expected, IReadOnlyList<TokenEvent> events, int maxTokens, int[] eos)
    {
        Assert.NotEmpty(events);
        for (int i = 0; i < events.Count; i++)
        {
            Assert.True(expected[i] == (int)events[i].TokenId, $"token {i}: expected {expected[i]}, got {events[i].TokenId}");
            Assert.Equal(i == events.Count - 1, events[i].FinishReason.Length > 0);
        }
        string reason = events[^1].FinishReason;
        if (reason == "length") Assert.Equal(maxTokens, events.Count);
        else
        {
            Assert.Equal("stop", reason);
            Assert.Contains((int)events[^1].TokenId, eos);
        }
    }

    [Fact]
    public async Task ConcurrentRequestsShareDecodeStepsAndMatchSingleSequenceGreedy()
    {
        var (model, checkpoint) = TinyModel.Load();
        using var _ = checkpoint;
        const int requests = 5, maxTokens = 24;
        var prompts = new uint[requests][];
        var expected = new int[requests][];
        for (int r = 0; r < requests; r++)
        {
            prompts[r] = TinyModel.Prompt(r, 3 + 4 * r);
            expected[r] = TinyModel.Greedy(model, prompts[r], maxTokens).Tokens;
        }
        await using var scheduler = Start(model);
        var streams = new ChannelReader<TokenEvent>[requests];
        for (int r = 0; r < requests; r++) streams[r] = scheduler.Submit(Request($"r{r}", prompts[r], maxTokens), CancellationToken.None);
        for (int r = 0; r < requests; r++)
        {
            var events = await ReadAll(streams[r]);
            AssertMatchesGreedy(expected[r], events, maxTokens, model.Config.EosTokenIds);
            Assert.Equal((uint)prompts[r].Length, events[0].PromptTokens);
        }
        Assert.True(scheduler.Counters.PeakBatch > 1, $"peak batch {scheduler.Counters.PeakBatch}");
        Assert.Equal(0, UsedBlocks(scheduler));
    }

    [Fact]
    public async Task MaxBatchBoundsTheStepAndQueuedRequestsJoinLater()
    {
        var (model, checkpoint) = TinyModel.Load();
        using var _ = checkpoint;
        await using var scheduler = Start(model, maxBatch: 2);
        var streams = new List<ChannelReader<TokenEvent>>();
        for (int r = 0; r < 5; r++) streams.Add(scheduler.Submit(Request($"r{r}", TinyModel.Prompt(r, 4), 12), CancellationToken.None));
        foreach (var s in streams) Assert.Equal("length", (await ReadAll(s))[^1].FinishReason);
        Assert.Equal(2, scheduler.Counters.PeakBatch);
        Assert.Equal(5 * 12, scheduler.Counters.GeneratedTokens);
    }

    [Fact]
    public async Task CancelledRequestWaitingForABatchSlotGivesBackItsReservation()
    {
        var (model, checkpoint) = TinyModel.Load();
        using var _ = checkpoint;
        await using var scheduler = Start(model, maxBatch: 1, cache: new LatentCacheOptions { BudgetBytes = 64 << 20 });
        using var stopRunner = new CancellationTokenSource();
        var runner = scheduler.Submit(Request("runner", TinyModel.Prompt(1, 8), 50_000), stopRunner.Token);
        using (var first = new CancellationTokenSource(Patience)) await runner.ReadAsync(first.Token);
        int before = scheduler.Caches.Stats().AvailableBlocks;
        using var cancel = new CancellationTokenSource();
        var waiting = scheduler.Submit(Request("waiting", TinyModel.Prompt(2, 8), 20_000), cancel.Token);
        Assert.True(scheduler.Caches.Stats().AvailableBlocks < before, "the waiting request reserved its context");
        Assert.Equal(1, scheduler.Counters.Queued);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ReadAll(waiting));
        // Given back while the runner still holds the only batch slot.
        await WaitUntil(() => scheduler.Counters.Queued == 0 && scheduler.Caches.Stats().AvailableBlocks == before);
        Assert.False(runner.Completion.IsCompleted, "the runner still runs");
        stopRunner.Cancel();
        await WaitUntil(() => UsedBlocks(scheduler) == 0 && scheduler.Counters.Running == 0);
    }

    [Fact]
    public async Task CancelledRequestLeavesTheBatchAndFreesItsCache()
    {
        var (model, checkpoint) = TinyModel.Load();
        using var _ = checkpoint;
        await using var scheduler = Start(model);
        using var cancel = new CancellationTokenSource();
        var doomed = scheduler.Submit(Request("doomed", TinyModel.Prompt(1, 8), 100_000), cancel.Token);
        var survivor = scheduler.Submit(Request("survivor", TinyModel.Prompt(2, 8), 64), CancellationToken.None);
        using (var first = new CancellationTokenSource(Patience))
        {
            for (int i = 0; i < 3; i++) await doomed.ReadAsync(first.Token);
        }
        // The survivor may already be done on a busy machine; the doomed request certainly holds its first block.
        Assert.True(UsedBlocks(scheduler) >= 1);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ReadAll(doomed));
        Assert.Equal("length", (await ReadAll(survivor))[^1].FinishReason);
        await WaitUntil(() => UsedBlocks(scheduler) == 0 && scheduler.Counters.Running == 0);
        // Far below its 100,000 tokens even when this thread lagged the engine before cancelling.
        Assert.True(scheduler.Counters.GeneratedTokens < 10_000, "the cancelled request stopped generating");
    }

    [Fact]
    public async Task FailedPrefillFailsOnlyItsRequest()
    {
        var (model, checkpoint) = TinyModel.Load();
        using var _ = checkpoint;
        await using var scheduler = Start(model);
        var good = scheduler.Submit(Request("good", TinyModel.Prompt(3, 5), 16), CancellationToken.None);
        // Past the vocabulary: the scheduler trusts its caller, so the embedding lookup fails inside the prefill.
        var bad = scheduler.Submit(new GenerationRequest("bad", [0, model.Config.VocabSize + 5], 4, new SamplingOptions(), []), CancellationToken.None);
        var e = await Assert.ThrowsAsync<GenerationFailure>(() => ReadAll(bad));
        Assert.Equal(GenerationFailureKind.Internal, e.Kind);
        Assert.StartsWith("request bad: prefill failed: ", e.Message);
        Assert.Equal(16, (await ReadAll(good)).Count);
        Assert.Equal(0, UsedBlocks(scheduler));
    }

    [Fact]
    public async Task FailedDecodeStepFailsItsBatchAndTheNodeKeepsServing()
    {
        var fault = new FaultyExperts.Switch();
        var (model, checkpoint) = TinyModel.Load((_, inner) => new FaultyExperts(inner, fault));
        using var _ = checkpoint;
        await using var scheduler = Start(model);
        var victim = scheduler.Submit(Request("victim", TinyModel.Prompt(4, 6), 1000), CancellationToken.None);
        using (var first = new CancellationTokenSource(Patience)) await victim.ReadAsync(first.Token);
        fault.Armed = true;
        var failure = await Assert.ThrowsAsync<GenerationFailure>(() => ReadAll(victim));
        Assert.Equal(GenerationFailureKind.Internal, failure.Kind);
        Assert.Equal("request victim: decode step failed: expert node went away", failure.Message);
        Assert.Equal(0, UsedBlocks(scheduler));

        fault.Armed = false;
        var expected = TinyModel.Greedy(model, TinyModel.Prompt(5, 6), 10).Tokens;
        var after = await ReadAll(scheduler.Submit(Request("after", TinyModel.Prompt(5, 6), 10), CancellationToken.None));
        AssertMatchesGreedy(expected, after, 10, model.Config.EosTokenIds);
    }

    [Fact]
    public async Task RoutedExpertsThatCannotAnswerFailTheStepAsExpertsUnavailable()
    {
        var fault = new FaultyExperts.Switch { Unavailable = true };
        var (model, checkpoint) = TinyModel.Load((_, inner) => new FaultyExperts(inner, fault));
        using var _ = checkpoint;
        await using var scheduler = Start(model);
        var prefill = scheduler.Submit(Request("prefill", TinyModel.Prompt(6, 6), 10), CancellationToken.None);
        fault.Armed = true;
        var failure = await Assert.ThrowsAsync<GenerationFailure>(() => ReadAll(prefill));
        Assert.Equal((GenerationFailureKind.ExpertsUnavailable, "request prefill: prefill failed: expert node went away"), (failure.Kind, failure.Message));
        Assert.IsType<RoutedExpertsUnavailableException>(failure.InnerException);

        fault.Armed = false;
        var decode = scheduler.Submit(Request("decode", TinyModel.Prompt(7, 6), 1000), CancellationToken.None);
        using (var first = new CancellationTokenSource(Patience)) await decode.ReadAsync(first.Token);
        fault.Armed = true;
        failure = await Assert.ThrowsAsync<GenerationFailure>(() => ReadAll(decode));
        Assert.Equal((GenerationFailureKind.ExpertsUnavailable, "request decode: decode step failed: expert node went away"), (failure.Kind, failure.Message));
        Assert.Equal(0, UsedBlocks(scheduler));
    }

    [Fact]
    public async Task ASubmissionAfterShutdownEndsAsShuttingDown()
    {
        var (model, checkpoint) = TinyModel.Load();
        using var _ = checkpoint;
        var scheduler = Start(model);
        await scheduler.DisposeAsync();
        var failure = await Assert.ThrowsAsync<GenerationFailure>(() => ReadAll(scheduler.Submit(Request("late", TinyModel.Prompt(8, 6), 4), CancellationToken.None)));
        Assert.Equal((GenerationFailureKind.ShuttingDown, "attention node test is shutting down"), (failure.Kind, failure.Message));
        Assert.Equal(0, UsedBlocks(scheduler));
        Assert.Equal(0, scheduler.Counters.Queued);
    }

    internal static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in time");
            await Task.Delay(20);
        }
    }

    /// <summary>Routed experts that throw while armed, standing in for an expert node that fails mid-step.</summary>
    private sealed class FaultyExperts(IRoutedExperts inner, FaultyExperts.Switch fault) : IRoutedExperts
    {
        /// <summary>Armed, it throws; as an expert node that cannot answer when <see cref="Unavailable"/>, as a bug otherwise.</summary>
        public sealed class Switch
        {
            public volatile bool Armed;
            public bool Unavailable;
        }

        public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null)
        {
            if (fault.Armed)
                throw fault.Unavailable ? new RoutedExpertsUnavailableException("expert node went away") : new InvalidOperationException("expert node went away");
            inner.Run(rows, n, ids, weights, output, shared);
        }
    }
}
