using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Tensors;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster info</c>: sizes that follow from a model's config.json (and the stored dtype when the weights are there).</summary>
public static class InfoCommand
{
    public const string Usage = "info --model DIR";

    public static Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string dir = args.Required("model");
        args.RejectUnknown();
        if (!Directory.Exists(dir)) throw new CliException($"{dir}: model directory not found");
        ModelConfig c = ModelConfig.Load(Path.Combine(dir, Checkpoint.ConfigFile));
        ModelStatistics s = ModelStatistics.For(c);
        var o = Console.Out;

        o.WriteLine($"model        {dir}: {c.NumHiddenLayers} layers ({s.MoeLayers} MoE), hidden {c.HiddenSize}, {c.NumAttentionHeads} heads, vocab {c.VocabSize}");
        if (c.NRoutedExperts > 0)
            o.WriteLine($"experts      {c.NRoutedExperts} routed in {c.NGroup} groups ({c.TopkGroup} chosen), {c.NumExpertsPerTok} per token, {c.NSharedExperts} shared");
        o.WriteLine($"parameters   {Count(s.TotalParameters)} total ({s.TotalParameters:N0}), MTP excluded; "
            + $"{Count(s.TotalParameters + s.MtpParameters)} with the {c.NumNextnPredictLayers} MTP layer(s)");
        o.WriteLine($"active       {Count(s.ActiveParameters)} per token ({s.ActiveParameters:N0}): embedding, attention, dense MLPs, routers, "
            + "shared experts, top-k routed experts, norms, lm_head");
        o.WriteLine($"KV cache     {s.MlaKvBytesPerToken:N0} bytes per token with MLA (kv_lora_rank {c.KvLoraRank} + qk_rope_head_dim {c.QkRopeHeadDim} per layer, BF16); "
            + $"multi-head attention would need {s.MhaKvBytesPerToken:N0} ({(double)s.MhaKvBytesPerToken / s.MlaKvBytesPerToken:F1}x)");
        if (c.NRoutedExperts > 0)
        {
            (DType dtype, string from) = ExpertDType(dir, c);
            o.WriteLine($"per expert   {s.ParametersPerExpert:N0} parameters, {s.BytesPerExpert(c, dtype):N0} bytes as {dtype.SafetensorsName()}"
                + (dtype == DType.F8E4M3 ? " with block scales" : "") + $" ({from})");
        }
        return Task.FromResult(0);
    }

    /// <summary>The stored dtype of the first routed expert when the weights are present, else what config.json announces.</summary>
    private static (DType, string) ExpertDType(string dir, ModelConfig c)
    {
        bool hasWeights = File.Exists(Path.Combine(dir, Checkpoint.IndexFile)) || File.Exists(Path.Combine(dir, Checkpoint.SingleFile));
        if (!hasWeights) return (c.Fp8BlockSize is null ? DType.BF16 : DType.F8E4M3, "from config.json");
        int layer = 0;
        while (!c.IsMoeLayer(layer)) layer++;
        string name = $"model.layers.{layer}.mlp.experts.0.gate_proj.weight";
        using var checkpoint = Checkpoint.Open(dir, n => n == name);
        return (checkpoint.Get(name).DType, "as stored");
    }

    private static string Count(long n) => n switch
    {
        >= 1_000_000_000 => $"{n / 1e9:F1} B",
        >= 1_000_000 => $"{n / 1e6:F1} M",
        >= 1_000 => $"{n / 1e3:F1} K",
        _ => n.ToString(),
    };
}
