namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// How a <see cref="BatchScheduler"/> runs: at most <paramref name="MaxBatch"/> sequences hold a slot (in prefill
/// or in the running batch), prompts are computed <paramref name="PrefillChunk"/> tokens at a time, and with
/// <paramref name="PrefixCache"/> prompts reuse and publish cached prefixes. <paramref name="NodeId"/> names the
/// node in errors.
/// </summary>
public sealed record SchedulerOptions(string NodeId, int MaxBatch = 32, int PrefillChunk = 512, bool PrefixCache = true);
