using Microsoft.Extensions.Logging;

namespace Cluster.AttentionNode;

/// <summary>How routed expert rows travel to the expert nodes.</summary>
public enum DispatchFormat { Bf16, Fp8 }

/// <summary>Settings of one attention node.</summary>
public sealed record AttentionOptions
{
    /// <summary>The checkpoint directory (config.json, safetensors; tokenizer.json when present limits sampling to ids with text).</summary>
    public required string ModelDir { get; init; }
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 binds a free port.</summary>
    public int Port { get; init; }
    public string NodeId { get; init; } = "attention-0";
    /// <summary>The placement plan; null runs the routed experts in this process.</summary>
    public string? PlanPath { get; init; }
    public DispatchFormat Dispatch { get; init; } = DispatchFormat.Bf16;
    /// <summary>How long to wait for expert nodes that are still loading before giving up.</summary>
    public TimeSpan ExpertWait { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>Most sequences in one decode step.</summary>
    public int MaxBatch { get; init; } = 32;
    public LogLevel LogLevel { get; init; } = LogLevel.Warning;
}
