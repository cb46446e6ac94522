using Cluster.Engine.Checkpoints;
using Cluster.Engine.Tensors;

namespace Cluster.ExpertNode.Host;

/// <summary>
/// Exactly the named tensors of a checkpoint that is already open: what each plan's new slots are loaded from. The
/// expert node maps every routed expert's tensors once, at start (headers read and the layout checked then, no byte
/// of a tensor read), so that a live rebalance's prepare parses nothing and allocates almost nothing. Measured in
/// bench rebalance: opening a checkpoint per prepare (the index and every shard's header parsed again, on each node)
/// was what held the step that overlapped it, through the CPU and a gen0 collection it caused. Getting a tensor
/// outside the names fails as a filtered Checkpoint would, so a node still never reads another expert's bytes.
/// </summary>
public sealed class CheckpointSubset(Checkpoint checkpoint, IReadOnlySet<string> names) : ITensorSource, IEvictableTensors
{
    public bool Contains(string name) => names.Contains(name) && checkpoint.Contains(name);

    public Weight Get(string name) =>
        names.Contains(name) ? checkpoint.Get(name) : throw new KeyNotFoundException($"tensor {name} is not among this node's slots");

    public IEnumerable<string> Names => names.Where(checkpoint.Contains);

    public void Evict(string name)
    {
        if (names.Contains(name)) checkpoint.Evict(name);
    }
}
