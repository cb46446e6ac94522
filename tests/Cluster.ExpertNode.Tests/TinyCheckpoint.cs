using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.ExpertNode.Tests;

/// <summary>The tiny synthetic preset (BF16 weights) written once per test run to a temp directory, as `cluster model init` writes it.</summary>
public static class TinyCheckpoint
{
    public const int Seed = 11;


    public static ModelConfig Config { get; } = SyntheticModel.ConfigFor(SyntheticPresets.Tiny, DType.BF16);

    public static string Dir => TestCheckpoints.Dir(Config, Seed);

    /// <summary>A fresh copy, for tests that damage it.</summary>
    public static string Write(string dir) => TestCheckpoints.WriteTo(dir, Config, Seed);

    /// <summary>The MoE layers of the tiny model.</summary>
    public static int[] MoeLayers => Enumerable.Range(0, Config.NumHiddenLayers).Where(Config.IsMoeLayer).ToArray();

    /// <summary>Deterministic rows of roughly unit scale, like normalized hidden states.</summary>
    public static float[] Rows(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n * Config.HiddenSize];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * 1.5f;
        return x;
    }
}
