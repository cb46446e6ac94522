using Cluster.AttentionNode.Scheduling;
using Cluster.Engine.Sampling;

namespace Cluster.AttentionNode.Tests;

/// <summary>The scheduling policy on its own, without a model: what the engine is told to do next, step by step.</summary>
public sealed class SchedulePolicyTests
{
    private readonly List<Sequence> _cancelled = [];

    /// <summary>A sequence of a <paramref name="prompt"/>-token prompt with <paramref name="pending"/> of it still to compute.</summary>
    private static Sequence Seq(string id, int prompt, int pending, CancellationToken cancel = default)
    {
        var request = new GenerationRequest(id, new int[prompt], 16, new SamplingOptions(), []);
        Sequence seq = Sequence.ForGeneration(request, new Sampler(request.Sampling, 8), cancel);
        seq.PendingPrompt = pending;
        return seq;
    }

    /// <summary>Asks for the next step and reports it as the engine would run it: a finished prompt joins the batch.</summary>
    private string Step(SchedulePolicy policy)
    {
        ScheduledStep step = policy.Next(_cancelled);
        switch (step.Kind)
        {
            case StepKind.Prefill:
                Sequence seq = step.Sequence!;
                string done = policy.Prefilled(step) ? " done" : "";
                if (done.Length > 0) policy.Join(seq);
                return $"prefill {seq.Request.Id} {step.Start}..{step.Start + step.Count}{done}";
            case StepKind.Decode:
                return "decode " + string.Join(",", step.Batch.Select(s => s.Request.Id));
            default:
                return "idle";
        }
    }

    private List<string> Steps(SchedulePolicy policy, int count) => [.. Enumerable.Range(0, count).Select(_ => Step(policy))];

    [Fact]
    public void PrefillChunksAlternateWithDecodeSteps()
    {
        var policy = new SchedulePolicy(maxBatch: 4, prefillChunk: 4);
        policy.Add(Seq("a", 3, 3));
        Assert.Equal(["prefill a 0..3 done", "decode a", "decode a"], Steps(policy, 3));
        policy.Add(Seq("b", 10, 10));
        Assert.Equal(
            ["prefill b 0..4", "decode a", "prefill b 4..8", "decode a", "prefill b 8..10 done", "decode a,b", "decode a,b"],
            Steps(policy, 7));
    }

    [Fact]
    public void LongPromptsTakeTurnsAChunkEach()
    {
        var policy = new SchedulePolicy(maxBatch: 4, prefillChunk: 4);
        policy.Add(Seq("a", 6, 6));
        policy.Add(Seq("b", 13, 13));
        policy.Add(Seq("c", 9, 9));
        Assert.Equal(
        [
            "prefill a 0..4", "prefill b 0..4", "prefill c 0..4",
            // a's prompt is done: the turn passes to b, not past it.
            "prefill a 4..6 done", "decode a", "prefill b 4..8", "decode a", "prefill c 4..8", "decode a",
            "prefill b 8..12", "decode a", "prefill c 8..9 done", "decode a,c", "prefill b 12..13 done", "decode a,c,b",
        ], Steps(policy, 15));
    }

    [Fact]
    public void AtMostMaxBatchSequencesHoldASlotAndTheRestJoinInArrivalOrder()
    {
        var policy = new SchedulePolicy(maxBatch: 2, prefillChunk: 8);
        Sequence a = Seq("a", 2, 2), b = Seq("b", 2, 2), c = Seq("c", 2, 2), d = Seq("d", 2, 2);
        foreach (Sequence s in (Sequence[])[a, b, c, d]) policy.Add(s);
        Assert.Equal(["prefill a 0..2 done", "decode a", "prefill b 0..2 done", "decode a,b", "decode a,b"], Steps(policy, 5));
        Assert.Equal([c, d], policy.Waiting);
        Assert.Equal(2, policy.Active);
        policy.Leave(b);
        Assert.Equal(["prefill c 0..2 done", "decode a,c"], Steps(policy, 2));
        Assert.Equal([d], policy.Waiting);
        policy.Leave(a);
        policy.Leave(c);
        Assert.Equal(["prefill d 0..2 done", "decode d"], Steps(policy, 2));
        policy.Leave(d);
        Assert.True(policy.IsEmpty);
        Assert.Equal("idle", Step(policy));
    }

    [Fact]
    public void CancelledSequencesLeaveAtTheNextDecisionWhereverTheyAre()
    {
        var policy = new SchedulePolicy(maxBatch: 4, prefillChunk: 4);
        using CancellationTokenSource cancelRunning = new(), cancelPrefilling = new(), cancelWaiting = new();
        Sequence running = Seq("running", 2, 2, cancelRunning.Token), a = Seq("a", 12, 12, cancelPrefilling.Token), b = Seq("b", 12, 12), c = Seq("c", 12, 12);
        foreach (Sequence s in (Sequence[])[running, a, b, c]) policy.Add(s);
        Sequence waiting = Seq("waiting", 4, 4, cancelWaiting.Token);
        policy.Add(waiting);
        Assert.Equal(["prefill running 0..2 done", "decode running", "prefill a 0..4", "decode running", "prefill b 0..4", "decode running"], Steps(policy, 6));
        Assert.Equal([waiting], policy.Waiting);

        // a, before the prompt whose turn it is (c), leaves: c keeps its turn.
        cancelRunning.Cancel();
        cancelPrefilling.Cancel();
        cancelWaiting.Cancel();
        Assert.Equal("prefill c 0..4", Step(policy));
        Assert.Equal([running, a, waiting], _cancelled);
        Assert.Equal([b, c], policy.Prefilling);
        Assert.Empty(policy.Running);
        Assert.Empty(policy.Waiting);
        Assert.Equal("prefill b 4..8", Step(policy));
    }

    [Fact]
    public void ASequencePrefilledElsewhereJoinsTheBatchWithoutAPrefillStep()
    {
        var policy = new SchedulePolicy(maxBatch: 3, prefillChunk: 4);
        policy.Add(Seq("local", 6, 6));
        policy.Add(Seq("remote", 50, 0));
        Assert.Equal(["prefill local 0..4", "decode remote", "prefill local 4..6 done", "decode remote,local"], Steps(policy, 4));
    }

    [Fact]
    public void APrefixFromTheCacheIsNotComputedAgain()
    {
        var policy = new SchedulePolicy(maxBatch: 1, prefillChunk: 4);
        policy.Add(Seq("hit", 10, 3));
        Assert.Equal(["prefill hit 7..10 done", "decode hit"], Steps(policy, 2));
    }
}
