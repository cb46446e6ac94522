using System.Text.Json;

namespace Cluster.Engine.Config;

/// <summary>Writes a <see cref="ModelConfig"/> as DeepSeek-V3's config.json, with the keys Hugging Face's DeepseekV3Config reads.</summary>
public static class ModelConfigWriter
{
    public static byte[] ToJson(ModelConfig c)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("architectures");
            w.WriteStringValue("DeepseekV3ForCausalLM");
            w.WriteEndArray();
            w.WriteBoolean("attention_bias", false);
            w.WriteNumber("attention_dropout", 0.0);
            if (c.BosTokenId is int bos) w.WriteNumber("bos_token_id", bos);
            if (c.EosTokenIds.Length == 1) w.WriteNumber("eos_token_id", c.EosTokenIds[0]);
            else if (c.EosTokenIds.Length > 1)
            {
                w.WriteStartArray("eos_token_id");
                foreach (int e in c.EosTokenIds) w.WriteNumberValue(e);
                w.WriteEndArray();
            }
            w.WriteNumber("first_k_dense_replace", c.FirstKDenseReplace);
            w.WriteString("hidden_act", "silu");
            w.WriteNumber("hidden_size", c.HiddenSize);
            w.WriteNumber("initializer_range", 0.02);
            w.WriteNumber("intermediate_size", c.IntermediateSize);
            w.WriteNumber("kv_lora_rank", c.KvLoraRank);
            w.WriteNumber("max_position_embeddings", c.MaxPositionEmbeddings);
            w.WriteString("model_type", "deepseek_v3");
            w.WriteNumber("moe_intermediate_size", c.MoeIntermediateSize);
            w.WriteNumber("moe_layer_freq", c.MoeLayerFreq);
            w.WriteNumber("n_group", c.NGroup);
            w.WriteNumber("n_routed_experts", c.NRoutedExperts);
            w.WriteNumber("n_shared_experts", c.NSharedExperts);
            w.WriteBoolean("norm_topk_prob", c.NormTopkProb);
            w.WriteNumber("num_attention_heads", c.NumAttentionHeads);
            w.WriteNumber("num_experts_per_tok", c.NumExpertsPerTok);
            w.WriteNumber("num_hidden_layers", c.NumHiddenLayers);
            w.WriteNumber("num_key_value_heads", c.NumAttentionHeads);
            w.WriteNumber("num_nextn_predict_layers", c.NumNextnPredictLayers);
            if (c.QLoraRank is int q) w.WriteNumber("q_lora_rank", q);
            else w.WriteNull("q_lora_rank");
            w.WriteNumber("qk_nope_head_dim", c.QkNopeHeadDim);
            w.WriteNumber("qk_rope_head_dim", c.QkRopeHeadDim);
            if (c.Fp8BlockSize is { } block)
            {
                w.WriteStartObject("quantization_config");
                w.WriteString("activation_scheme", "dynamic");
                w.WriteString("fmt", "e4m3");
                w.WriteString("quant_method", "fp8");
                w.WriteStartArray("weight_block_size");
                foreach (int b in block) w.WriteNumberValue(b);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteNumber("rms_norm_eps", c.RmsNormEps);
            // Absent in DeepSeek's own config, where Hugging Face's default (true) applies.
            if (!c.RopeInterleave) w.WriteBoolean("rope_interleave", false);
            if (c.RopeScaling is { } y)
            {
                w.WriteStartObject("rope_scaling");
                w.WriteNumber("beta_fast", y.BetaFast);
                w.WriteNumber("beta_slow", y.BetaSlow);
                w.WriteNumber("factor", y.Factor);
                w.WriteNumber("mscale", y.MScale);
                w.WriteNumber("mscale_all_dim", y.MScaleAllDim);
                w.WriteNumber("original_max_position_embeddings", y.OriginalMaxPositionEmbeddings);
                w.WriteString("type", "yarn");
                w.WriteEndObject();
            }
            else w.WriteNull("rope_scaling");
            w.WriteNumber("rope_theta", c.RopeTheta);
            w.WriteNumber("routed_scaling_factor", c.RoutedScalingFactor);
            w.WriteString("scoring_func", "sigmoid");
            w.WriteBoolean("tie_word_embeddings", c.TieWordEmbeddings);
            w.WriteNumber("topk_group", c.TopkGroup);
            w.WriteString("topk_method", "noaux_tc");
            w.WriteString("torch_dtype", "bfloat16");
            w.WriteBoolean("use_cache", true);
            w.WriteNumber("v_head_dim", c.VHeadDim);
            w.WriteNumber("vocab_size", c.VocabSize);
            w.WriteEndObject();
        }
        ms.WriteByte((byte)'\n');
        return ms.ToArray();
    }
}
