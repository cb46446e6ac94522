using Cluster.Engine.Config;

namespace Cluster.Engine.Synthetic;

/// <summary>
/// Model shapes for random checkpoints that keep DeepSeek-V3's structure: several expert groups with group-limited
/// top-8 routing, one shared expert, the first layer dense, q_lora, YaRN, one MTP layer.
/// </summary>
public static class SyntheticPresets
{
    public static readonly string[] Names = ["tiny", "small", "bench"];

    /// <summary>Tests and golden fixtures: about 1 M parameters, a 1024-token vocabulary (raw ids, no tokenizer).</summary>
    public static ModelConfig Tiny { get; } = Make(vocab: 1024, hidden: 64, inter: 192, moeInter: 32, layers: 3, heads: 4,
        experts: 32, groups: 4, topkGroup: 2, qLora: 48, kvLora: 32, rope: 16, nope: 16, v: 16);

    /// <summary>The interactive demo on a laptop CPU: the real tokenizer's vocabulary, about 170 M parameters.</summary>
    public static ModelConfig Small { get; } = Make(vocab: 129280, hidden: 256, inter: 768, moeInter: 128, layers: 6, heads: 8,
        experts: 64, groups: 8, topkGroup: 4, qLora: 192, kvLora: 128, rope: 32, nope: 32, v: 32);

    /// <summary>Speed measurements: about 1.2 G parameters (a few GB), far beyond any CPU cache.</summary>
    public static ModelConfig Bench { get; } = Make(vocab: 129280, hidden: 1024, inter: 2816, moeInter: 256, layers: 12, heads: 16,
        experts: 64, groups: 8, topkGroup: 4, qLora: 384, kvLora: 256, rope: 32, nope: 64, v: 64);

    public static ModelConfig ByName(string name) => name switch
    {
        "tiny" => Tiny,
        "small" => Small,
        "bench" => Bench,
        _ => throw new ArgumentException($"unknown preset '{name}' (expected {string.Join(", ", Names)})"),
    };

    private static ModelConfig Make(int vocab, int hidden, int inter, int moeInter, int layers, int heads, int experts,
        int groups, int topkGroup, int qLora, int kvLora, int rope, int nope, int v) => new()
    {
        VocabSize = vocab,
        HiddenSize = hidden,
        IntermediateSize = inter,
        MoeIntermediateSize = moeInter,
        NumHiddenLayers = layers,
        NumNextnPredictLayers = 1,
        NumAttentionHeads = heads,
        NSharedExperts = 1,
        NRoutedExperts = experts,
        RoutedScalingFactor = 2.5,
        KvLoraRank = kvLora,
        QLoraRank = qLora,
        QkRopeHeadDim = rope,
        QkNopeHeadDim = nope,
        VHeadDim = v,
        NGroup = groups,
        TopkGroup = topkGroup,
        NumExpertsPerTok = 8,
        FirstKDenseReplace = 1,
        MoeLayerFreq = 1,
        NormTopkProb = true,
        RmsNormEps = 1e-6,
        RopeTheta = 10000,
        // DeepSeek-V3's own YaRN settings: 4K pretraining context stretched 40x.
        RopeScaling = new YarnScaling(Factor: 40, OriginalMaxPositionEmbeddings: 4096, BetaFast: 32, BetaSlow: 1, MScale: 1, MScaleAllDim: 1),
        RopeInterleave = true,
        MaxPositionEmbeddings = 163840,
        TieWordEmbeddings = false,
        BosTokenId = 0,
        EosTokenIds = [1],
    };
}
