using Cluster.Engine.Config;
using Cluster.Engine.Model;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Model;

/// <summary>
/// Hand-made routing cases. The gate weight is the identity, so each input row is the router's logits directly:
/// 8 experts in 4 groups of 2, 2 groups kept, 2 experts chosen.
/// </summary>
public class GateTests
{
    private static readonly ModelConfig Config = SyntheticPresets.Tiny with
    {
        HiddenSize = 8, NRoutedExperts = 8, NGroup = 4, TopkGroup = 2, NumExpertsPerTok = 2,
        NormTopkProb = true, RoutedScalingFactor = 2.5,
    };

    private static (int[] Ids, float[] Weights) Route(float[] logits, float[]? bias = null, ModelConfig? config = null)
    {
        config ??= Config;
        var identity = new float[64];
        for (int i = 0; i < 8; i++) identity[i * 8 + i] = 1;
        var gate = new Gate(Weight.FromFloats("gate", [8, 8], identity, DType.F32), bias ?? new float[8], config);
        int[] ids = new int[2];
        float[] weights = new float[2];
        gate.Route(logits, 1, ids, weights);
        return (ids, weights);
    }

    private static float Sigmoid(float x) => 1 / (1 + MathF.Exp(-x));

    [Fact]
    public void ExpertInDroppedGroupIsNotChosen()
    {
        // Expert 6 has the best score, but its partner 7 is so low that group 3 loses to groups 0 and 1.
        float[] logits = [2, 2, 1.5f, 1.5f, -1, -1, 3, -9];
        var (ids, _) = Route(logits);
        Assert.Equal(new[] { 0, 1 }, ids);
        Assert.DoesNotContain(6, ids);
    }

    [Fact]
    public void GroupScoreIsTheSumOfItsTopTwo()
    {
        // Group 0 holds the best expert but a poor second (0.88 + 0.01); groups 1 (0.86 + 0.85) and 2 (0.5 + 0.5) win.
        float[] logits = [2, -5, 1.8f, 1.7f, 0, 0, -3, -3];
        var (ids, _) = Route(logits);
        Assert.Equal(new[] { 2, 3 }, ids);
    }

    [Fact]
    public void TopExpertsOfKeptGroupsWinAcrossGroups()
    {
        float[] logits = [2, 1, 1.8f, 0.5f, -3, -3, -3, -3];
        var (ids, weights) = Route(logits);
        Assert.Equal(new[] { 0, 2 }, ids);
        float s0 = Sigmoid(2), s2 = Sigmoid(1.8f);
        Assert.Equal(2.5f * s0 / (s0 + s2), weights[0], 1e-6f);
        Assert.Equal(2.5f * s2 / (s0 + s2), weights[1], 1e-6f);
    }

    [Fact]
    public void BiasChangesTheChoiceButNotTheWeight()
    {
        float[] logits = [2, 1, 0.5f, 0.4f, -4, -4, -4, -4];
        var (plain, _) = Route(logits);
        Assert.Equal(new[] { 0, 1 }, plain);
        // A bias on expert 2 lifts it above expert 1; its weight is still its unbiased sigmoid score.
        float[] bias = [0, 0, 0.15f, 0, 0, 0, 0, 0];
        var (ids, weights) = Route(logits, bias);
        Assert.Equal(new[] { 0, 2 }, ids);
        float s0 = Sigmoid(2), s2 = Sigmoid(0.5f);
        Assert.Equal(2.5f * s2 / (s0 + s2), weights[1], 1e-6f);
    }

    [Fact]
    public void TiesGoToTheLowerIndex()
    {
        float[] logits = [1, 1, 1, 1, 1, 1, 1, 1];
        var (ids, weights) = Route(logits);
        Assert.Equal(new[] { 0, 1 }, ids);
        Assert.Equal(1.25f, weights[0], 1e-6f);
    }

    [Fact]
    public void WithoutNormalisationWeightsAreScaledScores()
    {
        float[] logits = [2, 1, -3, -3, -3, -3, -3, -3];
        var (ids, weights) = Route(logits, config: Config with { NormTopkProb = false });
        Assert.Equal(new[] { 0, 1 }, ids);
        Assert.Equal(2.5f * Sigmoid(2), weights[0], 1e-6f);
        Assert.Equal(2.5f * Sigmoid(1), weights[1], 1e-6f);
    }

    [Fact]
    public void NormalisedWeightsSumToTheScalingFactor()
    {
        float[] logits = [0.3f, -0.2f, 0.9f, 0.1f, -1, 0.5f, 0.2f, 0.7f];
        var (_, weights) = Route(logits);
        Assert.Equal(2.5f, weights.Sum(), 1e-5f);
    }

    [Fact]
    public void BatchRowsAreRoutedIndependently()
    {
        var identity = new float[64];
        for (int i = 0; i < 8; i++) identity[i * 8 + i] = 1;
        var gate = new Gate(Weight.FromFloats("gate", [8, 8], identity, DType.F32), new float[8], Config);
        float[] rows = [2, 2, 1.5f, 1.5f, -1, -1, 3, -9, /* second row */ -3, -3, -3, -3, 4, 3, -3, -3];
        int[] ids = new int[4];
        gate.Route(rows, 2, ids, new float[4]);
        Assert.Equal(new[] { 0, 1, 4, 5 }, ids);
    }
}
