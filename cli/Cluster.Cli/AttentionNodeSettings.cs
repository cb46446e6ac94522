using System.Globalization;
using Cluster.Engine.Cache;

namespace Cluster.Cli;

/// <summary>
/// The prefill and latent-cache options of an attention node, read the same way by <c>cluster serve attention</c> and
/// by <c>cluster up</c>, which passes them on to every attention node it starts. Null: not given, the node's default.
/// </summary>
public sealed record AttentionNodeSettings(int? PrefillChunk, long? KvCacheBytes, int? KvBlockSize, LatentFormat? KvCacheFormat, bool NoPrefixCache, bool MicroBatchOverlap)
{
    public const string Usage = "[--prefill-chunk N] [--kv-cache-bytes SIZE] [--kv-block-size N] [--kv-cache-dtype bf16|f32] [--no-prefix-cache] [--micro-batch-overlap]";

    public static AttentionNodeSettings Parse(CliArgs args) => new(
        args.Has("prefill-chunk") ? args.Int("prefill-chunk", 0, 1, 1 << 20) : null,
        args.Has("kv-cache-bytes") ? args.Size("kv-cache-bytes", 0, 1) : null,
        args.Has("kv-block-size") ? args.Int("kv-block-size", 0, 1, 1 << 16) : null,
        args.String("kv-cache-dtype") is { } dtype ? ParseFormat(dtype) : null,
        args.Flag("no-prefix-cache"),
        args.Flag("micro-batch-overlap"));

    private static LatentFormat ParseFormat(string name)
    {
        try { return LatentFormats.Parse(name); }
        catch (ArgumentException) { throw new CliException($"--kv-cache-dtype must be bf16 or f32 (got '{name}')"); }
    }

    /// <summary>The command-line options that give a node these settings.</summary>
    public List<string> ToArgs()
    {
        var args = new List<string>();
        if (PrefillChunk is { } chunk) args.AddRange(["--prefill-chunk", chunk.ToString(CultureInfo.InvariantCulture)]);
        if (KvCacheBytes is { } bytes) args.AddRange(["--kv-cache-bytes", bytes.ToString(CultureInfo.InvariantCulture)]);
        if (KvBlockSize is { } block) args.AddRange(["--kv-block-size", block.ToString(CultureInfo.InvariantCulture)]);
        if (KvCacheFormat is { } format) args.AddRange(["--kv-cache-dtype", format.Name()]);
        if (NoPrefixCache) args.Add("--no-prefix-cache");
        if (MicroBatchOverlap) args.Add("--micro-batch-overlap");
        return args;
    }
}
