namespace Cluster.AttentionNode.Scheduling;

/// <summary>What the engine does next.</summary>
internal enum StepKind
{
    /// <summary>Nothing is waiting, in prefill or running.</summary>
    Idle,
    Prefill,
    Decode,
}

/// <summary>
/// The engine's next step as <see cref="SchedulePolicy.Next"/> decides it: a prefill chunk, prompt tokens
/// [<see cref="Start"/>, <see cref="Start"/> + <see cref="Count"/>) of <see cref="Sequence"/>; or a decode step
/// advancing every sequence of <see cref="Batch"/> by one token. Batch is the policy's running batch itself, valid
/// until its next decision.
/// </summary>
internal readonly record struct ScheduledStep(StepKind Kind, Sequence? Sequence, int Start, int Count, IReadOnlyList<Sequence> Batch)
{
    public static ScheduledStep Idle { get; } = new(StepKind.Idle, null, 0, 0, []);

    public static ScheduledStep Prefill(Sequence sequence, int start, int count) => new(StepKind.Prefill, sequence, start, count, []);

    public static ScheduledStep Decode(IReadOnlyList<Sequence> batch) => new(StepKind.Decode, null, 0, 0, batch);
}
