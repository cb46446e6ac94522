using Cluster.Engine.Checkpoints;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Config;

/// <summary>
/// Sizes that follow from a config alone: parameters in total and active per token, KV cache per token, bytes per
/// expert. Counted from the same tensor layout the checkpoint loader validates against.
/// </summary>
public sealed record ModelStatistics
{
    /// <summary>All parameters of the model without the MTP layers (DeepSeek-V3: 671 B).</summary>
    public required long TotalParameters { get; init; }
    /// <summary>Parameters of the MTP layers as stored in the checkpoint (with their own embedding and head copies).</summary>
    public required long MtpParameters { get; init; }
    /// <summary>
    /// Parameters one token uses, MTP excluded: embedding and lm_head, attention, norms, dense MLPs, routers, shared
    /// experts and num_experts_per_tok routed experts per MoE layer (DeepSeek-V3: 37 B).
    /// </summary>
    public required long ActiveParameters { get; init; }
    /// <summary>Parameters of one routed expert (gate, up and down projections).</summary>
    public required long ParametersPerExpert { get; init; }
    public required int MoeLayers { get; init; }
    /// <summary>MLA's latent cache: (kv_lora_rank + qk_rope_head_dim) per layer, in BF16.</summary>
    public required long MlaKvBytesPerToken { get; init; }
    /// <summary>Plain multi-head attention's cache: keys (qk_head_dim) and values (v_head_dim) of every head per layer, in BF16.</summary>
    public required long MhaKvBytesPerToken { get; init; }

    /// <summary>Bytes of one routed expert stored as <paramref name="dtype"/>, with FP8's 128x128 block scales.</summary>
    public long BytesPerExpert(ModelConfig c, DType dtype)
    {
        long bytes = ParametersPerExpert * dtype.Size();
        if (dtype == DType.F8E4M3)
        {
            int[][] shapes = [[c.MoeIntermediateSize, c.HiddenSize], [c.MoeIntermediateSize, c.HiddenSize], [c.HiddenSize, c.MoeIntermediateSize]];
            foreach (int[] s in shapes) bytes += Fp8Scales.ShapeFor(s).Elements() * sizeof(float);
        }
        return bytes;
    }

    public static ModelStatistics For(ModelConfig c)
    {
        long total = 0, mtp = 0, routed = 0;
        foreach (TensorSpec s in CheckpointLayout.For(c, DType.BF16, includeMtp: true))
        {
            if (s.IsMtp) mtp += s.Elements;
            else
            {
                total += s.Elements;
                if (s.Name.Contains(".mlp.experts.", StringComparison.Ordinal)) routed += s.Elements;
            }
        }
        int moeLayers = 0;
        for (int i = 0; i < c.NumHiddenLayers; i++) if (c.IsMoeLayer(i)) moeLayers++;
        long perExpert = 3L * c.MoeIntermediateSize * c.HiddenSize;
        long active = total - routed + (long)moeLayers * c.NumExpertsPerTok * perExpert;
        return new ModelStatistics
        {
            TotalParameters = total,
            MtpParameters = mtp,
            ActiveParameters = active,
            ParametersPerExpert = perExpert,
            MoeLayers = moeLayers,
            MlaKvBytesPerToken = (long)c.NumHiddenLayers * (c.KvLoraRank + c.QkRopeHeadDim) * 2,
            MhaKvBytesPerToken = (long)c.NumHiddenLayers * c.NumAttentionHeads * (c.QkHeadDim + c.VHeadDim) * 2,
        };
    }
}
