using System.Security.Cryptography;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Synthetic;

public class SyntheticModelTests
{
    private static string Hash(InMemoryTensorSource source)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (string name in source.Names)
        {
            Weight w = source.Get(name);
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            sha.AppendData(w.Bytes);
            if (w.ScaleInv is { } s) sha.AppendData(s.Bytes);
        }
        return Convert.ToHexString(sha.GetHashAndReset());
    }

    [Fact]
    public void Tiny_has_the_deepseek_v3_layout()
    {
        var c = SyntheticPresets.Tiny;
        var w = SyntheticModel.CreateWeights(c, seed: 1, DType.BF16);
        int h = c.HiddenSize;
        Assert.Equal([c.VocabSize, h], w.Get("model.embed_tokens.weight").Shape);
        Assert.Equal([c.QLoraRank!.Value, h], w.Get("model.layers.0.self_attn.q_a_proj.weight").Shape);
        Assert.Equal([c.NumAttentionHeads * (c.QkNopeHeadDim + c.QkRopeHeadDim), c.QLoraRank.Value], w.Get("model.layers.0.self_attn.q_b_proj.weight").Shape);
        Assert.Equal([c.KvLoraRank + c.QkRopeHeadDim, h], w.Get("model.layers.0.self_attn.kv_a_proj_with_mqa.weight").Shape);
        Assert.Equal([c.NumAttentionHeads * (c.QkNopeHeadDim + c.VHeadDim), c.KvLoraRank], w.Get("model.layers.1.self_attn.kv_b_proj.weight").Shape);
        Assert.Equal([h, c.NumAttentionHeads * c.VHeadDim], w.Get("model.layers.1.self_attn.o_proj.weight").Shape);
        // Layer 0 is dense, the others MoE with one shared expert.
        Assert.Equal([c.IntermediateSize, h], w.Get("model.layers.0.mlp.gate_proj.weight").Shape);
        Assert.False(w.Contains("model.layers.0.mlp.gate.weight"));
        Assert.Equal([c.NRoutedExperts, h], w.Get("model.layers.1.mlp.gate.weight").Shape);
        Assert.Equal(DType.F32, w.Get("model.layers.1.mlp.gate.e_score_correction_bias").DType);
        Assert.Equal([h, c.MoeIntermediateSize], w.Get($"model.layers.2.mlp.experts.{c.NRoutedExperts - 1}.down_proj.weight").Shape);
        Assert.Equal([c.MoeIntermediateSize, h], w.Get("model.layers.2.mlp.shared_experts.up_proj.weight").Shape);
        // The MTP layer after the last decoder layer, with its own embedding, projections and head.
        string mtp = $"model.layers.{c.NumHiddenLayers}.";
        Assert.Equal([h, 2 * h], w.Get(mtp + "eh_proj.weight").Shape);
        Assert.Equal([c.VocabSize, h], w.Get(mtp + "shared_head.head.weight").Shape);
        Assert.True(w.Contains(mtp + "embed_tokens.weight") && w.Contains(mtp + "enorm.weight") && w.Contains(mtp + "hnorm.weight") && w.Contains(mtp + "shared_head.norm.weight"));
        Assert.True(w.Contains(mtp + "mlp.experts.0.gate_proj.weight"));
        Assert.Equal([c.VocabSize, h], w.Get("lm_head.weight").Shape);
        Assert.Equal([h], w.Get("model.norm.weight").Shape);
        Assert.InRange(w.TotalBytes, 1_000_000, 3_000_000);
    }

    [Fact]
    public void Same_seed_same_bytes_and_different_seed_different_bytes()
    {
        var c = SyntheticPresets.Tiny;
        string a = Hash(SyntheticModel.CreateWeights(c, 7, DType.F8E4M3));
        string b = Hash(SyntheticModel.CreateWeights(c, 7, DType.F8E4M3));
        string d = Hash(SyntheticModel.CreateWeights(c, 8, DType.F8E4M3));
        Assert.Equal(a, b);
        Assert.NotEqual(a, d);
    }

    [Fact]
    public void Fp8_weights_dequantise_to_their_bf16_twin_within_fp8_precision()
    {
        var c = SyntheticPresets.Tiny;
        var bf = SyntheticModel.CreateWeights(c, 3, DType.BF16);
        var f8 = SyntheticModel.CreateWeights(c, 3, DType.F8E4M3);
        int fp8Tensors = 0;
        foreach (string name in f8.Names)
        {
            Weight q = f8.Get(name), r = bf.Get(name);
            Assert.Equal(r.Shape, q.Shape);
            if (q.DType != DType.F8E4M3) { Assert.True(q.Bytes.SequenceEqual(r.Bytes), name); continue; }
            fp8Tensors++;
            var a = new float[q.Cols];
            var e = new float[q.Cols];
            var scales = new float[q.ScaleInv!.Cols];
            for (int row = 0; row < q.Rows; row++)
            {
                q.DequantizeRow(row, a);
                r.DequantizeRow(row, e);
                q.ScaleInv.DequantizeRow(row / 128, scales);
                for (int col = 0; col < a.Length; col++)
                {
                    // E4M3 keeps 3 mantissa bits: half a step is 2^-4 relative; below 2^-6 of the block scale steps are absolute.
                    float tol = MathF.Abs(e[col]) * (1f / 16 + 1f / 256) + scales[col / 128] * MathF.Pow(2, -10);
                    Assert.True(MathF.Abs(a[col] - e[col]) <= tol, $"{name}[{row},{col}]: fp8 {a[col]} vs bf16 {e[col]}");
                }
            }
        }
        Assert.True(fp8Tensors > 100);
    }
}
