namespace Cluster.Engine.Tensors;

/// <summary>
/// Where the model's weights come from, by Hugging Face tensor name ("model.layers.3.mlp.experts.17.up_proj.weight").
/// A checkpoint directory, a subset of one (an expert node's shard), or an in-memory dictionary in tests.
/// Getting a tensor touches only its own bytes.
/// </summary>
public interface ITensorSource
{
    bool Contains(string name);

    /// <summary>The tensor, with its <c>_scale_inv</c> attached when it is FP8. Throws naming the tensor if absent.</summary>
    Weight Get(string name);

    IEnumerable<string> Names { get; }
}
