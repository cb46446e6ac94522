namespace Cluster.Engine.Checkpoints;

/// <summary>Progress of long checkpoint work (generating, writing, opening, validating) in bytes.</summary>
public readonly record struct ByteProgress(long Done, long Total);
