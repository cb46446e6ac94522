namespace Cluster.Engine.Tensors;

/// <summary>
/// A tensor source whose weights are a read-only file mapping (a checkpoint on disk): the resident pages of a tensor
/// no longer used can be given back, and a later read refaults them from the page cache. In-memory sources are not
/// one: giving back anonymous pages would lose their contents.
/// </summary>
public interface IEvictableTensors
{
    /// <summary>Gives back the resident pages of <paramref name="name"/> (and of its FP8 scales).</summary>
    void Evict(string name);
}
