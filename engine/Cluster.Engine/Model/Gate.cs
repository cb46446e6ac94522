using System.Buffers;
using Cluster.Engine.Backend;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Model;

/// <summary>
/// DeepSeek-V3's router (noaux_tc): sigmoid scores; e_score_correction_bias added for choosing only;
/// experts split into n_group groups, each scored by the sum of its two best biased scores; only the best
/// topk_group groups compete; the top num_experts_per_tok experts among them are chosen. Their weights are the
/// unbiased scores, normalised to sum 1 when norm_topk_prob, times routed_scaling_factor.
/// </summary>
public sealed class Gate
{
    private readonly Weight _weight;
    private readonly float[] _bias;
    private readonly int _experts, _groups, _topkGroup;
    private readonly bool _normalize;
    private readonly float _scaling;
    private readonly IKernels _kernels;

    public Gate(Weight weight, float[] bias, ModelConfig config, IKernels? kernels = null)
    {
        _kernels = kernels ?? CpuBackend.Default.Kernels;
        _weight = weight;
        _bias = bias;
        _experts = config.NRoutedExperts;
        _groups = config.NGroup;
        _topkGroup = config.TopkGroup;
        TopK = config.NumExpertsPerTok;
        _normalize = config.NormTopkProb;
        _scaling = (float)config.RoutedScalingFactor;
    }

    public static Gate Load(ITensorSource source, string prefix, ModelConfig config, IKernels kernels) => new(
        TensorShapes.Matrix(source, prefix + ".weight", config.NRoutedExperts, config.HiddenSize),
        TensorShapes.Vector(source, prefix + ".e_score_correction_bias", config.NRoutedExperts),
        config, kernels);

    public int Hidden => _weight.Cols;

    /// <summary>Experts chosen per token.</summary>
    public int TopK { get; }

    /// <summary>
    /// For each of the n rows of x: expert ids (best first) and their weights, n * TopK of each, row-major.
    /// Ties go to the lower expert or group index.
    /// </summary>
    public void Route(ReadOnlySpan<float> x, int n, Span<int> ids, Span<float> weights)
    {
        if (ids.Length < n * TopK || weights.Length < n * TopK) throw new ArgumentException($"router: outputs need {n * TopK} entries");
        float[] logits = ArrayPool<float>.Shared.Rent(n * _experts);
        _kernels.MatMul(x, n, _weight, logits.AsSpan(0, n * _experts));
        Span<float> scores = stackalloc float[_experts];
        Span<float> choice = stackalloc float[_experts];
        Span<float> groupScores = stackalloc float[_groups];
        Span<int> keptGroups = stackalloc int[_topkGroup];
        Span<int> best2 = stackalloc int[2];
        int perGroup = _experts / _groups;
        for (int r = 0; r < n; r++)
        {
            _kernels.Sigmoid(logits.AsSpan(r * _experts, _experts), scores);
            _kernels.Add(scores, _bias, choice);
            for (int g = 0; g < _groups; g++)
            {
                ReadOnlySpan<float> group = choice.Slice(g * perGroup, perGroup);
                Span<int> top = best2[..Math.Min(2, perGroup)];
                Kernels.TopK.Select(group, top);
                float sum = 0;
                foreach (int i in top) sum += group[i];
                groupScores[g] = sum;
            }
            Kernels.TopK.Select(groupScores, keptGroups);
            // Experts of dropped groups cannot be chosen at all (DeepSeek masks them to -inf).
            for (int g = 0; g < _groups; g++)
                if (keptGroups.IndexOf(g) < 0) choice.Slice(g * perGroup, perGroup).Fill(float.NegativeInfinity);
            Span<int> rowIds = ids.Slice(r * TopK, TopK);
            Span<float> rowWeights = weights.Slice(r * TopK, TopK);
            Kernels.TopK.Select(choice, rowIds);
            float total = 0;
            for (int k = 0; k < TopK; k++) total += rowWeights[k] = scores[rowIds[k]];
            float scale = _normalize ? _scaling / (total + 1e-20f) : _scaling;
            for (int k = 0; k < TopK; k++) rowWeights[k] *= scale;
        }
        ArrayPool<float>.Shared.Return(logits);
    }
}
