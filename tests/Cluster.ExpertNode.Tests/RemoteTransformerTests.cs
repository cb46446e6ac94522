using Xunit.Abstractions;
using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Model;
using Cluster.ExpertNode.Host;
using Cluster.Protos.V1;

namespace Cluster.ExpertNode.Tests;

/// <summary>A whole model whose routed experts live on expert nodes against the same model run in one process.</summary>
public class RemoteTransformerTests(ITestOutputHelper output)
{
    private static readonly int[] Prompt = [0, 15, 27, 3, 999, 512, 64, 7];
    private const int Steps = 16;

    /// <summary>Greedy generation: the tokens and the logits of every step (prompt's last row, then each decode).</summary>
    private static (List<int> Tokens, List<float[]> Logits) Greedy(Transformer model)
    {
        int vocab = model.Config.VocabSize;
        var cache = new SequenceCache(model.Config);
        var logits = new float[vocab];
        var tokens = new List<int>();
        var steps = new List<float[]>();
        model.Prefill(Prompt, cache, AttentionPath.Absorbed, logits, lastRowOnly: true);
        for (int s = 0; s < Steps; s++)
        {
            steps.Add((float[])logits.Clone());
            int next = Array.IndexOf(logits, logits.Max());
            tokens.Add(next);
            model.Decode([next], [cache], logits);
        }
        return (tokens, steps);
    }

    private static float LogSumExp(float[] x)
    {
        double max = x.Max(), sum = 0;
        foreach (float v in x) sum += Math.Exp(v - max);
        return (float)(max + Math.Log(sum));
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 2)]
    [InlineData(3, 1)]
    public async Task GreedyTokensEqualTheLocalModelWithBf16Dispatch(int nodes, int redundant)
    {
        using var local = Checkpoint.Open(TinyCheckpoint.Dir);
        (List<int> expected, List<float[]> localLogits) = Greedy(Transformer.Load(local.Config, local));

        await using ExpertCluster cluster = await ExpertCluster.StartAsync(nodes, redundant);
        using var attention = Checkpoint.Open(TinyCheckpoint.Dir, name => !HostedExperts.IsRoutedExpertTensor(name));
        Assert.DoesNotContain(attention.Names, HostedExperts.IsRoutedExpertTensor);
        var model = Transformer.Load(attention.Config, attention, null, layer => cluster.Streams.ForLayer(layer, TensorDType.Bf16));
        (List<int> actual, List<float[]> remoteLogits) = Greedy(model);

        Assert.Equal(expected, actual);
        // Equality is meaningful only if no step was a near tie: the local top-2 margin must exceed twice the
        // largest logit difference BF16 dispatch caused (then no rounding of that size can flip the argmax).
        double smallestRatio = double.PositiveInfinity;
        for (int s = 0; s < Steps; s++)
        {
            float[] l = localLogits[s], r = remoteLogits[s];
            float diff = 0;
            for (int i = 0; i < l.Length; i++) diff = Math.Max(diff, Math.Abs(l[i] - r[i]));
            float[] top = l.OrderDescending().Take(2).ToArray();
            Assert.True(top[0] - top[1] > 2 * diff, $"step {s}: top-2 margin {top[0] - top[1]:E2} vs logit difference {diff:E2}");
            Assert.True(diff > 0, "bf16 dispatch should change the logits a little");
            smallestRatio = Math.Min(smallestRatio, (top[0] - top[1]) / diff);
        }
        output.WriteLine($"{nodes} nodes, {redundant} redundant: smallest top-2 margin / logit difference over {Steps} steps = {smallestRatio:F1}");
    }

    [Fact]
    public async Task Fp8DispatchKeepsLogprobsWithinBound()
    {
        using var local = Checkpoint.Open(TinyCheckpoint.Dir);
        var localModel = Transformer.Load(local.Config, local);
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 2);
        using var attention = Checkpoint.Open(TinyCheckpoint.Dir, name => !HostedExperts.IsRoutedExpertTensor(name));
        var remoteModel = Transformer.Load(attention.Config, attention, null, layer => cluster.Streams.ForLayer(layer, TensorDType.Fp8E4M3));

        // Teacher-forced on the local greedy sequence, so both models see the same tokens at every step.
        (List<int> tokens, List<float[]> localLogits) = Greedy(localModel);
        var cache = new SequenceCache(remoteModel.Config);
        var logits = new float[remoteModel.Config.VocabSize];
        remoteModel.Prefill(Prompt, cache, AttentionPath.Absorbed, logits, lastRowOnly: true);
        double worst = 0;
        for (int s = 0; s < Steps; s++)
        {
            float[] l = localLogits[s];
            float lseLocal = LogSumExp(l), lseRemote = LogSumExp(logits);
            // Logprob of the chosen token and of the local top 5.
            foreach (int t in l.Select((v, i) => (v, i)).OrderByDescending(x => x.v).Take(5).Select(x => x.i))
                worst = Math.Max(worst, Math.Abs((l[t] - lseLocal) - (logits[t] - lseRemote)));
            remoteModel.Decode([tokens[s]], [cache], logits);
        }
        output.WriteLine($"fp8 dispatch: largest top-5 logprob change {worst:E2} nats over {Steps} steps");
        Assert.True(worst < 0.1, $"fp8 dispatch moved a top-5 logprob by {worst:E2} nats");
        Assert.True(worst > 1e-5, "fp8 rounding should be visible in the logprobs");
    }

    /// <summary>
    /// Dual micro-batch overlap: a batch of five sequences (halves of 3 and 2), prefilled one by one (each prompt's
    /// rows split too) and decoded four steps, gives the logits of one pass over the same remote experts, and each MoE
    /// layer's second half is begun while the first half's rows are with the expert nodes.
    /// </summary>
    [Fact]
    public async Task OverlappedMicroBatchesGiveTheLogitsOfOnePass()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 1);
        using var attention = Checkpoint.Open(TinyCheckpoint.Dir, name => !HostedExperts.IsRoutedExpertTensor(name));
        var calls = new List<(string Call, int Slot, int Layer)>();
        float[] Run(bool overlap)
        {
            var model = Transformer.Load(attention.Config, attention, null, layer => new RecordingExperts(cluster.Streams.ForLayer(layer, TensorDType.F32), layer, calls));
            model.OverlapMicroBatches = overlap;
            Assert.True(model.CanOverlap);
            int vocab = model.Config.VocabSize, sequences = 5, steps = 4;
            var caches = new ILatentCache[sequences];
            var logits = new float[(sequences + steps * sequences) * vocab];
            int[] tokens = new int[sequences];
            for (int q = 0; q < sequences; q++)
            {
                caches[q] = new SequenceCache(model.Config);
                model.Prefill(Prompt.AsSpan(0, 3 + q), caches[q], AttentionPath.Naive, logits.AsSpan(q * vocab, vocab), lastRowOnly: true);
                tokens[q] = (q * 31 + 7) % vocab;
            }
            // A prompt alone is one sequence: its rows are never split into micro-batches.
            Assert.All(calls, c => Assert.Equal("run", c.Call));
            calls.Clear();
            for (int s = 0; s < steps; s++)
            {
                model.Decode(tokens, caches, logits.AsSpan((sequences + s * sequences) * vocab, sequences * vocab));
                for (int q = 0; q < sequences; q++) tokens[q] = (tokens[q] * 17 + s) % vocab;
            }
            return logits;
        }

        float[] onePass = Run(overlap: false);
        Assert.All(calls, c => Assert.Equal("run", c.Call));
        float[] overlapped = Run(overlap: true);
        Assert.InRange(RemoteExpertsTests.RelativeError(overlapped, onePass), 0, 1e-5);

        // Within one decode step, each MoE layer: A begun, B begun, A finished, B finished, and A's next layer
        // begun before B's finish (so B's rows travel while A computes).
        int[] moe = [.. calls.Select(c => c.Layer).Distinct().Order()];
        var step = calls.Take(4 * moe.Length).ToList();
        int At(string call, int slot, int layer) => step.FindIndex(c => c == (call, slot, layer));
        for (int i = 0; i < moe.Length; i++)
        {
            int l = moe[i];
            Assert.True(At("begin", 0, l) < At("begin", 1, l) && At("begin", 1, l) < At("finish", 0, l) && At("finish", 0, l) < At("finish", 1, l), $"layer {l}: {string.Join(", ", step)}");
            if (i + 1 < moe.Length) Assert.True(At("begin", 0, moe[i + 1]) < At("finish", 1, l), $"layer {l}: {string.Join(", ", step)}");
        }
    }

    /// <summary>The remote experts with each call written down, in order.</summary>
    private sealed class RecordingExperts(IOverlappedExperts inner, int layer, List<(string, int, int)> calls) : IOverlappedExperts
    {
        public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null)
        {
            calls.Add(("run", 0, layer));
            inner.Run(rows, n, ids, weights, output, shared);
        }

        public void Begin(int slot, ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights)
        {
            calls.Add(("begin", slot, layer));
            inner.Begin(slot, rows, n, ids, weights);
        }

        public void Finish(int slot, ReadOnlySpan<float> rows, int n, Span<float> output, Mlp? shared)
        {
            calls.Add(("finish", slot, layer));
            inner.Finish(slot, rows, n, output, shared);
        }

        public void Abandon(int slot) => inner.Abandon(slot);
    }
}
