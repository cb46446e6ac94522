using System.Threading.Channels;
using Cluster.Protos.V1;

namespace Cluster.AttentionNode.Tests;

/// <summary>A long prompt is prefilled in chunks between decode steps, taking turns with other prompts.</summary>
public sealed class ChunkedPrefillTests
{
    [Fact]
    public async Task ShortPromptsFinishBeforeALongPromptSubmittedAheadOfThemGetsItsFirstToken()
    {
        var gate = new ManualResetEventSlim(false);
        var (model, checkpoint) = TinyModel.Load((_, inner) => new GatedExperts(inner, gate));
        using var _ = checkpoint;
        uint[] longPrompt = TinyModel.Prompt(60, 1500);
        const int shorts = 5, shortTokens = 12;
        await using var scheduler = SchedulerTests.Start(model, maxBatch: 8, prefillChunk: 64);
        int ticket = 0;
        // The order in which streams reach a point: each waits on its own channel, so the tickets follow the engine's writes.
        async Task<(int First, int Last)> Watch(ChannelReader<TokenEvent> events)
        {
            int first = 0, last = 0;
            await foreach (TokenEvent e in events.ReadAllAsync())
            {
                if (first == 0) first = Interlocked.Increment(ref ticket);
                if (e.FinishReason.Length > 0) last = Interlocked.Increment(ref ticket);
            }
            return (first, last);
        }
        var longWatch = Watch(scheduler.Submit(SchedulerTests.Request("long", longPrompt, 2), CancellationToken.None));
        var shortWatches = new Task<(int First, int Last)>[shorts];
        // The engine waits inside the long prompt's first chunk until the short ones are queued behind it.
        for (int i = 0; i < shorts; i++) shortWatches[i] = Watch(scheduler.Submit(SchedulerTests.Request($"short{i}", TinyModel.Prompt(61 + i, 6), shortTokens), CancellationToken.None));
        gate.Set();

        var (longFirst, _) = await longWatch;
        for (int i = 0; i < shorts; i++)
        {
            var (first, last) = await shortWatches[i];
            Assert.True(first < longFirst, $"short {i}'s first token (#{first}) came after the long prompt's (#{longFirst})");
            // Decode steps ran between the long prompt's chunks: the short requests finished meanwhile.
            Assert.True(last < longFirst, $"short {i} finished (#{last}) after the long prompt's first token (#{longFirst})");
        }
        Assert.Equal(1500 + shorts * 6, scheduler.Counters.ComputedPromptTokens);
        Assert.Equal(0, scheduler.Counters.QueuedPromptTokens);
    }

    [Fact]
    public async Task ChunkedPrefillGivesTheSingleProcessGreedyTokens()
    {
        var (model, checkpoint) = TinyModel.Load();
        using var _ = checkpoint;
        uint[] prompt = TinyModel.Prompt(62, 200);
        const int maxTokens = 8;
        int[] expected = TinyModel.Greedy(model, prompt, maxTokens).Tokens;
        await using var scheduler = SchedulerTests.Start(model, prefillChunk: 48);
        var events = await SchedulerTests.ReadAll(scheduler.Submit(SchedulerTests.Request("chunked", prompt, maxTokens), CancellationToken.None));
        SchedulerTests.AssertMatchesGreedy(expected, events, maxTokens, model.Config.EosTokenIds);
    }
}
