using Cluster.Engine.Config;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Checkpoints;

/// <summary>
/// Every tensor a DeepSeek-V3 config implies, named and shaped as in Hugging Face's checkpoint
/// (model.safetensors.index.json of deepseek-ai/DeepSeek-V3), in the order a checkpoint stores them.
/// </summary>
public static class CheckpointLayout
{
    /// <summary>
    /// The tensors of <paramref name="config"/>. <paramref name="matrixDType"/> (BF16 or F8E4M3) is the dtype of the
    /// attention and MLP/expert projections; as in DeepSeek's FP8 release, embeddings, lm_head, the MTP layer's
    /// eh_proj and head, the router and the norms stay BF16 and the router bias F32.
    /// </summary>
    public static List<TensorSpec> For(ModelConfig config, DType matrixDType = DType.BF16, bool includeMtp = true)
    {
        var list = new List<TensorSpec>();
        int h = config.HiddenSize, v = config.VocabSize;
        list.Add(new("model.embed_tokens.weight", [v, h], DType.BF16, TensorRole.Embedding, false));
        for (int i = 0; i < config.NumHiddenLayers; i++) AddDecoderLayer(list, config, i, matrixDType, false);
        if (includeMtp)
            for (int k = 0; k < config.NumNextnPredictLayers; k++)
            {
                int i = config.NumHiddenLayers + k;
                string p = $"model.layers.{i}.";
                list.Add(new(p + "embed_tokens.weight", [v, h], DType.BF16, TensorRole.Embedding, true));
                list.Add(new(p + "enorm.weight", [h], DType.BF16, TensorRole.Norm, true));
                list.Add(new(p + "hnorm.weight", [h], DType.BF16, TensorRole.Norm, true));
                list.Add(new(p + "eh_proj.weight", [h, 2 * h], DType.BF16, TensorRole.Projection, true));
                AddDecoderLayer(list, config, i, matrixDType, true);
                list.Add(new(p + "shared_head.norm.weight", [h], DType.BF16, TensorRole.Norm, true));
                list.Add(new(p + "shared_head.head.weight", [v, h], DType.BF16, TensorRole.Projection, true));
            }
        list.Add(new("model.norm.weight", [h], DType.BF16, TensorRole.Norm, false));
        if (!config.TieWordEmbeddings) list.Add(new("lm_head.weight", [v, h], DType.BF16, TensorRole.Projection, false));
        return list;
    }

    /// <summary>True for names of the MTP layers (layer index >= num_hidden_layers), which the engine skips.</summary>
    public static bool IsMtp(ModelConfig config, string name) =>
        LayerIndex(name) is int i && i >= config.NumHiddenLayers;

    /// <summary>The layer index in "model.layers.{i}.", or null for tensors outside the layers.</summary>
    public static int? LayerIndex(string name)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return null;
        int end = name.IndexOf('.', prefix.Length);
        return end > prefix.Length && int.TryParse(name.AsSpan(prefix.Length, end - prefix.Length), out int i) ? i : null;
    }

    private static void AddDecoderLayer(List<TensorSpec> list, ModelConfig c, int i, DType m, bool mtp)
    {
        string p = $"model.layers.{i}.";
        int h = c.HiddenSize, heads = c.NumAttentionHeads;
        void Add(string name, int[] shape, DType dtype, TensorRole role) => list.Add(new(p + name, shape, dtype, role, mtp));

        Add("input_layernorm.weight", [h], DType.BF16, TensorRole.Norm);
        if (c.QLoraRank is int q)
        {
            Add("self_attn.q_a_proj.weight", [q, h], m, TensorRole.Projection);
            Add("self_attn.q_a_layernorm.weight", [q], DType.BF16, TensorRole.Norm);
            Add("self_attn.q_b_proj.weight", [heads * c.QkHeadDim, q], m, TensorRole.Projection);
        }
        else Add("self_attn.q_proj.weight", [heads * c.QkHeadDim, h], m, TensorRole.Projection);
        Add("self_attn.kv_a_proj_with_mqa.weight", [c.KvLoraRank + c.QkRopeHeadDim, h], m, TensorRole.Projection);
        Add("self_attn.kv_a_layernorm.weight", [c.KvLoraRank], DType.BF16, TensorRole.Norm);
        Add("self_attn.kv_b_proj.weight", [heads * (c.QkNopeHeadDim + c.VHeadDim), c.KvLoraRank], m, TensorRole.Projection);
        Add("self_attn.o_proj.weight", [h, heads * c.VHeadDim], m, TensorRole.Projection);
        Add("post_attention_layernorm.weight", [h], DType.BF16, TensorRole.Norm);

        if (!c.IsMoeLayer(i))
        {
            AddMlp(list, p + "mlp.", h, c.IntermediateSize, m, mtp);
            return;
        }
        Add("mlp.gate.weight", [c.NRoutedExperts, h], DType.BF16, TensorRole.Router);
        Add("mlp.gate.e_score_correction_bias", [c.NRoutedExperts], DType.F32, TensorRole.RouterBias);
        for (int j = 0; j < c.NRoutedExperts; j++) AddMlp(list, $"{p}mlp.experts.{j}.", h, c.MoeIntermediateSize, m, mtp);
        if (c.NSharedExperts > 0) AddMlp(list, p + "mlp.shared_experts.", h, c.MoeIntermediateSize * c.NSharedExperts, m, mtp);
    }

    private static void AddMlp(List<TensorSpec> list, string p, int hidden, int inter, DType m, bool mtp)
    {
        list.Add(new(p + "gate_proj.weight", [inter, hidden], m, TensorRole.Projection, mtp));
        list.Add(new(p + "up_proj.weight", [inter, hidden], m, TensorRole.Projection, mtp));
        list.Add(new(p + "down_proj.weight", [hidden, inter], m, TensorRole.Projection, mtp));
    }
}
