using Cluster.Engine.Config;
using Cluster.Engine.Backend;
using Cluster.Engine.Kernels;

namespace Cluster.Engine.Model;

/// <summary>
/// Rotary position embedding on the qk_rope_head_dim dims, as Hugging Face's deepseek_v3 computes it:
/// plain RoPE frequencies, or YaRN's blend of interpolated and extrapolated frequencies with cos/sin scaled by
/// the attention factor. (YaRN's effect on the softmax scale is <see cref="ModelConfig.SoftmaxScale"/>.)
/// </summary>
public sealed class Rotary
{
    private readonly float[] _invFreq;
    private readonly float _attentionFactor;
    private readonly bool _interleaved;
    private readonly IKernels _kernels;

    public Rotary(ModelConfig config, IKernels? kernels = null)
    {
        _kernels = kernels ?? CpuBackend.Default.Kernels;
        Dim = config.QkRopeHeadDim;
        (double[] invFreq, double factor) = Frequencies(config);
        _invFreq = Array.ConvertAll(invFreq, f => (float)f);
        _attentionFactor = (float)factor;
        _interleaved = config.RopeInterleave;
    }

    public int Dim { get; }

    /// <summary>cos and sin (Dim/2 each) at <paramref name="position"/>, in float32 like HF's position embedding.</summary>
    public void Angles(int position, Span<float> cos, Span<float> sin)
    {
        for (int j = 0; j < _invFreq.Length; j++)
        {
            float angle = position * _invFreq[j];
            cos[j] = MathF.Cos(angle) * _attentionFactor;
            sin[j] = MathF.Sin(angle) * _attentionFactor;
        }
    }

    /// <summary>Rotates one rope vector of Dim values in place.</summary>
    public void Apply(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin) => _kernels.Rope(x, cos, sin, _interleaved);

    /// <summary>inv_freq per frequency pair and the cos/sin attention factor (HF's _compute_yarn_parameters).</summary>
    public static (double[] InvFreq, double AttentionFactor) Frequencies(ModelConfig config)
    {
        int dim = config.QkRopeHeadDim;
        double theta = config.RopeTheta;
        var invFreq = new double[dim / 2];
        for (int j = 0; j < invFreq.Length; j++) invFreq[j] = 1.0 / Math.Pow(theta, 2.0 * j / dim);
        if (config.RopeScaling is not { } yarn) return (invFreq, 1.0);

        // Frequencies that turn fewer than beta_slow times over the original context are interpolated (divided
        // by factor); more than beta_fast times, kept; a linear ramp in between.
        double CorrectionDim(double rotations) =>
            dim * Math.Log(yarn.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = Math.Max(Math.Floor(CorrectionDim(yarn.BetaFast)), 0);
        double high = Math.Min(Math.Ceiling(CorrectionDim(yarn.BetaSlow)), dim - 1);
        if (low == high) high += 0.001;
        for (int j = 0; j < invFreq.Length; j++)
        {
            double ramp = Math.Clamp((j - low) / (high - low), 0, 1);
            double extrapolation = 1 - ramp;
            invFreq[j] = invFreq[j] / yarn.Factor * (1 - extrapolation) + invFreq[j] * extrapolation;
        }
        double attention = yarn.MScale != 0 && yarn.MScaleAllDim != 0
            ? ModelConfig.YarnMScale(yarn.Factor, yarn.MScale) / ModelConfig.YarnMScale(yarn.Factor, yarn.MScaleAllDim)
            : ModelConfig.YarnMScale(yarn.Factor, 1);
        return (invFreq, attention);
    }
}
