using System.Text.Json.Nodes;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using System.Runtime.CompilerServices;

namespace Cluster.Engine.Tests.Config;

public class ModelConfigTests
{
    /// <summary>DeepSeek-V3's published config.json, found beside this source file (independent of where the tests were built).</summary>
    public static string DeepSeekV3Json => File.ReadAllText(Path.Combine(SourceDirectory(), "Fixtures", "deepseek-v3-config.json"));

    private static string SourceDirectory([CallerFilePath] string file = "") => Path.GetDirectoryName(file)!;

    private static string With(string key, JsonNode? value)
    {
        var o = JsonNode.Parse(DeepSeekV3Json)!.AsObject();
        o[key] = value;
        return o.ToJsonString();
    }

    private static string Without(string key)
    {
        var o = JsonNode.Parse(DeepSeekV3Json)!.AsObject();
        Assert.True(o.Remove(key));
        return o.ToJsonString();
    }

    [Fact]
    public void Parses_deepseek_v3()
    {
        ModelConfig c = ModelConfig.Parse(DeepSeekV3Json);
        Assert.Equal(7168, c.HiddenSize);
        Assert.Equal(61, c.NumHiddenLayers);
        Assert.Equal(1, c.NumNextnPredictLayers);
        Assert.Equal(256, c.NRoutedExperts);
        Assert.Equal(8, c.NumExpertsPerTok);
        Assert.Equal(1536, c.QLoraRank);
        Assert.Equal(512, c.KvLoraRank);
        Assert.Equal(192, c.QkHeadDim);
        Assert.Equal((8, 4), (c.NGroup, c.TopkGroup));
        Assert.Equal(2.5, c.RoutedScalingFactor);
        Assert.Equal(new YarnScaling(40, 4096, 32, 1, 1, 1), c.RopeScaling);
        Assert.Equal([128, 128], c.Fp8BlockSize!);
        Assert.Equal(0, c.BosTokenId);
        Assert.Equal([1], c.EosTokenIds);
        Assert.True(c.RopeInterleave);
        Assert.False(c.IsMoeLayer(2));
        Assert.True(c.IsMoeLayer(3));
        // DeepSeek's softmax scale: mscale(40, 1)^2 / sqrt(192).
        double m = 0.1 * Math.Log(40) + 1;
        Assert.Equal(m * m / Math.Sqrt(192), c.SoftmaxScale, 12);
    }

    [Fact]
    public void Without_quantization_config_the_weights_are_not_fp8() =>
        Assert.Null(ModelConfig.Parse(Without("quantization_config")).Fp8BlockSize);

    [Fact]
    public void Null_q_lora_rank_selects_q_proj() =>
        Assert.Null(ModelConfig.Parse(With("q_lora_rank", null)).QLoraRank);

    [Fact]
    public void Eos_as_a_list() =>
        Assert.Equal([1, 2], ModelConfig.Parse(With("eos_token_id", new JsonArray(1, 2))).EosTokenIds);

    [Theory]
    [InlineData("model_type", "\"llama\"", "config.json: unsupported model_type = \"llama\"")]
    [InlineData("hidden_act", "\"gelu\"", "config.json: unsupported hidden_act = \"gelu\"")]
    [InlineData("scoring_func", "\"softmax\"", "config.json: unsupported scoring_func = \"softmax\"")]
    [InlineData("topk_method", "\"greedy\"", "config.json: unsupported topk_method = \"greedy\"")]
    public void Unsupported_values_name_key_and_value(string key, string value, string message)
    {
        var e = Assert.Throws<NotSupportedException>(() => ModelConfig.Parse(With(key, JsonNode.Parse(value))));
        Assert.StartsWith(message, e.Message);
    }

    [Theory]
    [InlineData("hidden_size", "\"7168\"", "config.json: hidden_size must be a number (got \"7168\")")]
    [InlineData("hidden_size", "7168.5", "config.json: hidden_size must be an integer (got 7168.5)")]
    [InlineData("norm_topk_prob", "1", "config.json: norm_topk_prob must be true or false (got 1)")]
    [InlineData("num_attention_heads", "0", "config.json: num_attention_heads must be positive (got 0)")]
    [InlineData("qk_rope_head_dim", "63", "config.json: qk_rope_head_dim must be a positive even number (got 63)")]
    [InlineData("n_group", "3", "config.json: n_group must divide n_routed_experts=256 (got 3)")]
    [InlineData("topk_group", "9", "config.json: topk_group must be in 1..n_group=8 (got 9)")]
    [InlineData("eos_token_id", "[1, \"x\"]", "config.json: eos_token_id must be a list of integers (got [1,\"x\"])")]
    [InlineData("eos_token_id", "\"1\"", "config.json: eos_token_id must be a number (got \"1\")")]
    [InlineData("num_experts_per_tok", "300", "config.json: num_experts_per_tok must be in 1..n_routed_experts=256 (got 300)")]
    public void Wrong_types_and_values_name_key_and_value(string key, string value, string message)
    {
        var e = Assert.Throws<InvalidDataException>(() => ModelConfig.Parse(With(key, JsonNode.Parse(value))));
        Assert.Equal(message, e.Message);
    }

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("vocab_size")]
    [InlineData("kv_lora_rank")]
    [InlineData("model_type")]
    public void Missing_keys_are_named(string key)
    {
        var e = Assert.Throws<InvalidDataException>(() => ModelConfig.Parse(Without(key)));
        Assert.Equal($"config.json: missing {key}", e.Message);
    }

    [Theory]
    [InlineData("{\"quant_method\": \"awq\"}", "unsupported quant_method = \"awq\"")]
    [InlineData("{\"quant_method\": \"fp8\", \"fmt\": \"e5m2\"}", "unsupported fmt = \"e5m2\"")]
    [InlineData("{\"quant_method\": \"fp8\", \"activation_scheme\": \"static\"}", "unsupported activation_scheme = \"static\"")]
    [InlineData("{\"quant_method\": \"fp8\", \"weight_block_size\": [64, 64]}", "unsupported weight_block_size = \"[64, 64]\"")]
    [InlineData("{\"quant_method\": \"fp8\", \"weight_block_size\": [128]}", "unsupported weight_block_size = \"[128]\"")]
    public void Quantization_config_variants_that_are_refused(string q, string message)
    {
        var e = Assert.Throws<NotSupportedException>(() => ModelConfig.Parse(With("quantization_config", JsonNode.Parse(q))));
        Assert.Contains("quantization_config: " + message, e.Message);
    }

    [Fact]
    public void Weight_block_size_that_is_not_integers_is_named()
    {
        var e = Assert.Throws<InvalidDataException>(() => ModelConfig.Parse(With("quantization_config", JsonNode.Parse("{\"quant_method\": \"fp8\", \"weight_block_size\": \"128x128\"}"))));
        Assert.Equal("config.json: quantization_config: weight_block_size must be a list of integers (got \"128x128\")", e.Message);
    }

    [Fact]
    public void Quantization_config_defaults_to_128_blocks() =>
        Assert.Equal([128, 128], ModelConfig.Parse(With("quantization_config", JsonNode.Parse("{\"quant_method\": \"fp8\"}")))!.Fp8BlockSize!);

    [Fact]
    public void Rope_scaling_other_than_yarn_is_refused()
    {
        var e = Assert.Throws<NotSupportedException>(() => ModelConfig.Parse(With("rope_scaling", JsonNode.Parse("{\"type\": \"linear\", \"factor\": 2}"))));
        Assert.Contains("rope_scaling: unsupported type = \"linear\"", e.Message);
    }

    [Fact]
    public void Invalid_json_is_one_line()
    {
        var e = Assert.Throws<InvalidDataException>(() => ModelConfig.Parse("{\"hidden_size\": ", "dir/config.json"));
        Assert.StartsWith("dir/config.json: invalid JSON", e.Message);
    }

    [Fact]
    public void Written_config_parses_back_to_the_same_values()
    {
        foreach (string preset in SyntheticPresets.Names)
        {
            ModelConfig c = SyntheticPresets.ByName(preset);
            ModelConfig back = ModelConfig.Parse(System.Text.Encoding.UTF8.GetString(ModelConfigWriter.ToJson(c)));
            Assert.Equal(c.EosTokenIds, back.EosTokenIds);
            Assert.Equal(c, back with { EosTokenIds = c.EosTokenIds });
        }
        ModelConfig noLora = SyntheticPresets.Tiny with { QLoraRank = null, RopeScaling = null, RopeInterleave = false };
        Assert.Equal(noLora, ModelConfig.Parse(System.Text.Encoding.UTF8.GetString(ModelConfigWriter.ToJson(noLora))) with { EosTokenIds = noLora.EosTokenIds });
    }
}
