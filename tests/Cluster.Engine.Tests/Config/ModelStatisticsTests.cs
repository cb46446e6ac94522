using Cluster.Engine.Config;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Config;

public class ModelStatisticsTests
{
    [Fact]
    public void DeepSeek_v3_has_671B_parameters_37B_active_and_a_70KB_latent_cache()
    {
        ModelConfig c = ModelConfig.Parse(ModelConfigTests.DeepSeekV3Json);
        ModelStatistics s = ModelStatistics.For(c);
        // The published figures: 671 B total without the MTP module, 685 B with it, 37 B activated per token.
        Assert.InRange(s.TotalParameters, 670.5e9, 671.5e9);
        Assert.InRange(s.TotalParameters + s.MtpParameters, 684e9, 686e9);
        Assert.InRange(s.ActiveParameters, 37e9, 38e9);
        Assert.Equal(58, s.MoeLayers);
        Assert.Equal(3L * 2048 * 7168, s.ParametersPerExpert);
        // (512 + 64) BF16 values per layer, against 128 heads x (192 key + 128 value dims).
        Assert.Equal(61L * 576 * 2, s.MlaKvBytesPerToken);
        Assert.Equal(61L * 128 * (192 + 128) * 2, s.MhaKvBytesPerToken);
        // FP8: one byte per weight plus 16x56 + 16x56 + 56x16 F32 block scales.
        Assert.Equal(3L * 2048 * 7168 + 3 * 16 * 56 * 4, s.BytesPerExpert(c, DType.F8E4M3));
        Assert.Equal(3L * 2048 * 7168 * 2, s.BytesPerExpert(c, DType.BF16));
    }

    [Fact]
    public void Counts_match_the_tensors_of_a_synthetic_checkpoint()
    {
        var c = Cluster.Engine.Synthetic.SyntheticPresets.Tiny;
        var w = Cluster.Engine.Synthetic.SyntheticModel.CreateWeights(c, 0, DType.BF16);
        long all = 0;
        foreach (string n in w.Names) all += w.Get(n).Elements;
        ModelStatistics s = ModelStatistics.For(c);
        Assert.Equal(all, s.TotalParameters + s.MtpParameters);
        long routedPerLayer = (long)c.NRoutedExperts * s.ParametersPerExpert;
        Assert.Equal(s.TotalParameters - s.MoeLayers * (routedPerLayer - c.NumExpertsPerTok * s.ParametersPerExpert), s.ActiveParameters);
    }
}
