using Cluster.Engine.Cache;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Xunit.Abstractions;

namespace Cluster.Engine.Tests.Model;

/// <summary>
/// What request migration changes with a BF16 latent cache: the node taking over prefills prompt + tokens so far in
/// one pass, where the lost node had decoded them step by step, so the cached rows round differently. At every cut
/// point of greedy runs, the next-token logits of the replay stay within a bound of the undisturbed run's, and the
/// argmax differs only where the undisturbed top-2 margin is under that bound (docs/api.md's claim).
/// </summary>
public class ReplayBoundTests(ITestOutputHelper output)
{
    /// <summary>Largest change of any logit a replay may cause here; the measured worst is logged.</summary>
    private const double LogitBound = 5e-3;
    private const int Steps = 24;

    [Fact]
    public void AReplayedPrefillMovesTheNextLogitsWithinTheBoundAndFlipsOnlyNearTies()
    {
        Transformer model = TinyModel.Load();
        int vocab = model.Config.VocabSize;
        double worst = 0;
        int cuts = 0, flips = 0;
        for (int seed = 0; seed < 6; seed++)
        {
            int[] prompt = [0, .. Enumerable.Range(0, 3 + seed).Select(i => (seed * 97 + i * 31 + 5) % vocab)];
            // The undisturbed run: prefill, then one decode step per token, logits kept before each sampled token.
            var cache = new SequenceCache(model.Config, 8, LatentFormat.BF16);
            var logits = new float[vocab];
            model.Prefill(prompt, cache, AttentionPath.Naive, logits, lastRowOnly: true);
            var tokens = new List<int>();
            var steps = new List<float[]>();
            for (int s = 0; s < Steps; s++)
            {
                steps.Add((float[])logits.Clone());
                tokens.Add(TopK.Argmax(logits));
                model.Decode([tokens[^1]], [cache], logits);
            }
            // A migration after k tokens: a fresh node prefills prompt + tokens[..k] and samples token k from that.
            for (int k = 1; k < Steps; k += 3)
            {
                var replay = new float[vocab];
                model.Prefill([.. prompt, .. tokens.Take(k)], new SequenceCache(model.Config, 8, LatentFormat.BF16), AttentionPath.Naive, replay, lastRowOnly: true);
                float[] undisturbed = steps[k];
                double diff = 0;
                for (int i = 0; i < vocab; i++) diff = Math.Max(diff, Math.Abs(replay[i] - undisturbed[i]));
                worst = Math.Max(worst, diff);
                cuts++;
                if (TopK.Argmax(replay) == tokens[k]) continue;
                flips++;
                float[] top = [.. undisturbed.OrderDescending().Take(2)];
                Assert.True(top[0] - top[1] < 2 * LogitBound, $"prompt {seed}, cut {k}: the replay picked another token at a top-2 margin of {top[0] - top[1]:E2}");
            }
        }
        output.WriteLine($"BF16 replay after a migration: largest logit change {worst:E2} over {cuts} cut points, {flips} argmax flips");
        Assert.InRange(worst, 1e-7, LogitBound);
    }
}
