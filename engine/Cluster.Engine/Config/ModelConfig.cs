using System.Text.Json;
using System.Text.Json.Nodes;

namespace Cluster.Engine.Config;

/// <summary>YaRN rope scaling as in DeepSeek-V3's config.json ("rope_scaling": {"type": "yarn", ...}).</summary>
public sealed record YarnScaling(
    double Factor,
    int OriginalMaxPositionEmbeddings,
    double BetaFast,
    double BetaSlow,
    double MScale,
    double MScaleAllDim);

/// <summary>
/// config.json of the DeepSeek-V3 family (model_type "deepseek_v3": DeepSeek-V3/R1, Kimi-K2, Moonlight), with the
/// Hugging Face field names and defaults. Anything we cannot run is rejected naming the key and its value.
/// </summary>
public sealed record ModelConfig
{
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    /// <summary>Dense MLP width (layers below FirstKDenseReplace).</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>Width of each routed and shared expert.</summary>
    public required int MoeIntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    /// <summary>MTP layers, stored after the last decoder layer (index NumHiddenLayers).</summary>
    public int NumNextnPredictLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public int NSharedExperts { get; init; }
    public int NRoutedExperts { get; init; }
    public double RoutedScalingFactor { get; init; } = 1.0;
    public required int KvLoraRank { get; init; }
    /// <summary>Null: queries are projected directly by q_proj (DeepSeek-V2-Lite, Moonlight style).</summary>
    public int? QLoraRank { get; init; }
    public required int QkRopeHeadDim { get; init; }
    public required int QkNopeHeadDim { get; init; }
    public required int VHeadDim { get; init; }
    public int NGroup { get; init; } = 1;
    public int TopkGroup { get; init; } = 1;
    public int NumExpertsPerTok { get; init; }
    public int FirstKDenseReplace { get; init; }
    public int MoeLayerFreq { get; init; } = 1;
    public bool NormTopkProb { get; init; } = true;
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000;
    public YarnScaling? RopeScaling { get; init; }
    /// <summary>true: rope dims are stored interleaved (pairs 2i, 2i+1) and de-interleaved before rotate_half, as HF's deepseek_v3 does.</summary>
    public bool RopeInterleave { get; init; } = true;
    public int MaxPositionEmbeddings { get; init; } = 4096;
    public bool TieWordEmbeddings { get; init; }
    public int? BosTokenId { get; init; }
    public int[] EosTokenIds { get; init; } = [];
    /// <summary>FP8 block size from quantization_config.weight_block_size, or null when the weights are not FP8.</summary>
    public int[]? Fp8BlockSize { get; init; }

    public int QkHeadDim => QkNopeHeadDim + QkRopeHeadDim;

    /// <summary>True when decoder layer <paramref name="layer"/> has routed experts.</summary>
    public bool IsMoeLayer(int layer) =>
        NRoutedExperts > 0 && layer >= FirstKDenseReplace && layer % MoeLayerFreq == 0;

    /// <summary>Softmax scale of attention: 1/sqrt(qk_head_dim), times mscale^2 under YaRN (DeepSeek's convention).</summary>
    public double SoftmaxScale
    {
        get
        {
            double scale = 1.0 / Math.Sqrt(QkHeadDim);
            if (RopeScaling is { } y && y.MScaleAllDim != 0)
            {
                double m = YarnMScale(y.Factor, y.MScaleAllDim);
                scale *= m * m;
            }
            return scale;
        }
    }

    public static double YarnMScale(double scale, double mscale) =>
        scale <= 1 ? 1.0 : 0.1 * mscale * Math.Log(scale) + 1.0;

    public static ModelConfig Load(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (FileNotFoundException) { throw new FileNotFoundException($"{path}: config.json not found"); }
        catch (DirectoryNotFoundException) { throw new FileNotFoundException($"{path}: config.json not found"); }
        return Parse(text, path);
    }

    public static ModelConfig Parse(string json, string source = "config.json")
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new InvalidDataException($"{source}: not a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: invalid JSON ({e.Message})"); }
        var r = new Reader(o, source);

        string modelType = r.Str("model_type") ?? throw r.Missing("model_type");
        if (modelType is not ("deepseek_v3" or "kimi_k2"))
            throw r.Unsupported("model_type", modelType, "only the DeepSeek-V3 family (deepseek_v3)");
        string act = r.Str("hidden_act") ?? "silu";
        if (act != "silu") throw r.Unsupported("hidden_act", act, "only silu");
        string scoring = r.Str("scoring_func") ?? "sigmoid";
        if (scoring != "sigmoid") throw r.Unsupported("scoring_func", scoring, "only sigmoid");
        string topk = r.Str("topk_method") ?? "noaux_tc";
        if (topk != "noaux_tc") throw r.Unsupported("topk_method", topk, "only noaux_tc");

        YarnScaling? yarn = null;
        if (o["rope_scaling"] is JsonObject rs)
        {
            var y = new Reader(rs, source + ": rope_scaling");
            string type = y.Str("type") ?? y.Str("rope_type") ?? throw y.Missing("type");
            if (type is not "yarn") throw y.Unsupported("type", type, "only yarn");
            yarn = new YarnScaling(
                y.Dbl("factor") ?? throw y.Missing("factor"),
                y.Int("original_max_position_embeddings") ?? throw y.Missing("original_max_position_embeddings"),
                y.Dbl("beta_fast") ?? 32, y.Dbl("beta_slow") ?? 1, y.Dbl("mscale") ?? 1, y.Dbl("mscale_all_dim") ?? 0);
        }

        int[]? block = null;
        if (o["quantization_config"] is JsonObject q)
        {
            var qr = new Reader(q, source + ": quantization_config");
            string method = qr.Str("quant_method") ?? throw qr.Missing("quant_method");
            if (method != "fp8") throw qr.Unsupported("quant_method", method, "only fp8");
            string fmt = qr.Str("fmt") ?? "e4m3";
            if (fmt != "e4m3") throw qr.Unsupported("fmt", fmt, "only e4m3");
            string scheme = qr.Str("activation_scheme") ?? "dynamic";
            if (scheme != "dynamic") throw qr.Unsupported("activation_scheme", scheme, "only dynamic");
            block = qr.IntArray("weight_block_size") ?? [128, 128];
            if (block is not [128, 128]) throw qr.Unsupported("weight_block_size", $"[{string.Join(", ", block)}]", "only [128, 128]");
        }

        int[] eos = o["eos_token_id"] is JsonArray ? r.IntArray("eos_token_id")! : r.Int("eos_token_id") is int eosId ? [eosId] : [];

        var c = new ModelConfig
        {
            VocabSize = r.Int("vocab_size") ?? throw r.Missing("vocab_size"),
            HiddenSize = r.Int("hidden_size") ?? throw r.Missing("hidden_size"),
            IntermediateSize = r.Int("intermediate_size") ?? throw r.Missing("intermediate_size"),
            MoeIntermediateSize = r.Int("moe_intermediate_size") ?? r.Int("intermediate_size")!.Value,
            NumHiddenLayers = r.Int("num_hidden_layers") ?? throw r.Missing("num_hidden_layers"),
            NumNextnPredictLayers = r.Int("num_nextn_predict_layers") ?? 0,
            NumAttentionHeads = r.Int("num_attention_heads") ?? throw r.Missing("num_attention_heads"),
            NSharedExperts = r.Int("n_shared_experts") ?? 0,
            NRoutedExperts = r.Int("n_routed_experts") ?? 0,
            RoutedScalingFactor = r.Dbl("routed_scaling_factor") ?? 1.0,
            KvLoraRank = r.Int("kv_lora_rank") ?? throw r.Missing("kv_lora_rank"),
            QLoraRank = r.Int("q_lora_rank"),
            QkRopeHeadDim = r.Int("qk_rope_head_dim") ?? throw r.Missing("qk_rope_head_dim"),
            QkNopeHeadDim = r.Int("qk_nope_head_dim") ?? throw r.Missing("qk_nope_head_dim"),
            VHeadDim = r.Int("v_head_dim") ?? throw r.Missing("v_head_dim"),
            NGroup = r.Int("n_group") ?? 1,
            TopkGroup = r.Int("topk_group") ?? 1,
            NumExpertsPerTok = r.Int("num_experts_per_tok") ?? 0,
            FirstKDenseReplace = r.Int("first_k_dense_replace") ?? 0,
            MoeLayerFreq = r.Int("moe_layer_freq") ?? 1,
            NormTopkProb = r.Bool("norm_topk_prob") ?? true,
            RmsNormEps = r.Dbl("rms_norm_eps") ?? 1e-6,
            RopeTheta = r.Dbl("rope_theta") ?? 10000,
            RopeScaling = yarn,
            RopeInterleave = r.Bool("rope_interleave") ?? true,
            MaxPositionEmbeddings = r.Int("max_position_embeddings") ?? 4096,
            TieWordEmbeddings = r.Bool("tie_word_embeddings") ?? false,
            BosTokenId = r.Int("bos_token_id"),
            EosTokenIds = eos,
            Fp8BlockSize = block,
        };
        c.Validate(source);
        return c;
    }

    private void Validate(string source)
    {
        void Positive(string key, int v) { if (v <= 0) throw new InvalidDataException($"{source}: {key} must be positive (got {v})"); }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("kv_lora_rank", KvLoraRank);
        Positive("qk_nope_head_dim", QkNopeHeadDim);
        Positive("v_head_dim", VHeadDim);
        if (QkRopeHeadDim <= 0 || QkRopeHeadDim % 2 != 0) throw new InvalidDataException($"{source}: qk_rope_head_dim must be a positive even number (got {QkRopeHeadDim})");
        if (QLoraRank is <= 0) throw new InvalidDataException($"{source}: q_lora_rank must be positive or null (got {QLoraRank})");
        if (MoeLayerFreq <= 0) throw new InvalidDataException($"{source}: moe_layer_freq must be positive (got {MoeLayerFreq})");
        if (NRoutedExperts > 0)
        {
            Positive("moe_intermediate_size", MoeIntermediateSize);
            if (NumExpertsPerTok <= 0 || NumExpertsPerTok > NRoutedExperts)
                throw new InvalidDataException($"{source}: num_experts_per_tok must be in 1..n_routed_experts={NRoutedExperts} (got {NumExpertsPerTok})");
            if (NGroup <= 0 || NRoutedExperts % NGroup != 0)
                throw new InvalidDataException($"{source}: n_group must divide n_routed_experts={NRoutedExperts} (got {NGroup})");
            if (TopkGroup <= 0 || TopkGroup > NGroup)
                throw new InvalidDataException($"{source}: topk_group must be in 1..n_group={NGroup} (got {TopkGroup})");
            if (NumExpertsPerTok > TopkGroup * (NRoutedExperts / NGroup))
                throw new InvalidDataException($"{source}: num_experts_per_tok={NumExpertsPerTok} exceeds the experts in topk_group={TopkGroup} groups");
        }
    }

    /// <summary>Typed reads from a JSON object that name the key and value when they have the wrong type.</summary>
    private readonly struct Reader(JsonObject o, string source)
    {
        public string? Str(string key) => Get(key, JsonValueKind.String) is { } v ? v.GetValue<string>() : null;

        public int? Int(string key)
        {
            if (Get(key, JsonValueKind.Number) is not { } v) return null;
            if (v.TryGetValue(out int i)) return i;
            double d = v.GetValue<double>();
            if (d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue) return (int)d;
            throw new InvalidDataException($"{source}: {key} must be an integer (got {v.ToJsonString()})");
        }

        /// <summary>A list of integers, or null when the key is absent.</summary>
        public int[]? IntArray(string key)
        {
            JsonNode? n = o[key];
            if (n is null) return null;
            if (n is not JsonArray a) throw new InvalidDataException($"{source}: {key} must be a list of integers (got {n.ToJsonString()})");
            var result = new int[a.Count];
            for (int i = 0; i < a.Count; i++)
            {
                if (a[i] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out int x)) result[i] = x;
                else throw new InvalidDataException($"{source}: {key} must be a list of integers (got {n.ToJsonString()})");
            }
            return result;
        }

        public double? Dbl(string key) => Get(key, JsonValueKind.Number)?.GetValue<double>();

        public bool? Bool(string key)
        {
            if (o[key] is not JsonValue v) return null;
            return v.GetValueKind() switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                JsonValueKind.Null => null,
                _ => throw new InvalidDataException($"{source}: {key} must be true or false (got {v.ToJsonString()})"),
            };
        }

        private JsonValue? Get(string key, JsonValueKind kind)
        {
            JsonNode? n = o[key];
            if (n is null) return null;
            if (n is JsonValue v && v.GetValueKind() == kind) return v;
            throw new InvalidDataException($"{source}: {key} must be a {kind.ToString().ToLowerInvariant()} (got {n.ToJsonString()})");
        }

        public InvalidDataException Missing(string key) => new($"{source}: missing {key}");

        public NotSupportedException Unsupported(string key, string value, string what) =>
            new($"{source}: unsupported {key} = \"{value}\" ({what} is supported)");
    }
}
