using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;
using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Codec;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;

namespace Cluster.ExpertNode.Tests;

/// <summary>Dispatch/combine over real expert hosts on loopback against the engine's local routed experts.</summary>
public class RemoteExpertsTests
{
    private static readonly Lazy<(Checkpoint Checkpoint, Dictionary<int, Moe> Layers)> s_local = new(() =>
    {
        var checkpoint = Checkpoint.Open(TinyCheckpoint.Dir);
        return (checkpoint, TinyCheckpoint.MoeLayers.ToDictionary(l => l, l => Moe.Load(checkpoint, TinyCheckpoint.Config, l)));
    });

    private static Moe Local(int layer) => s_local.Value.Layers[layer];

    /// <summary>Gate choices for the rows, as the attention node computes them.</summary>
    private static (int[] Ids, float[] Weights) Route(int layer, float[] rows, int n)
    {
        int k = TinyCheckpoint.Config.NumExpertsPerTok;
        var ids = new int[n * k];
        var weights = new float[n * k];
        Local(layer).Gate.Route(rows, n, ids, weights);
        return (ids, weights);
    }

    private static float[] Roundtrip(float[] rows, int n, TensorDType dtype)
    {
        int hidden = TinyCheckpoint.Config.HiddenSize, blocks = RowCodec.ScaleBlocks(hidden);
        var bytes = new byte[RowCodec.Bytes(dtype, rows.Length)];
        var scales = new float[n * blocks];
        if (dtype == TensorDType.Bf16) RowCodec.EncodeBf16(rows, bytes);
        else for (int r = 0; r < n; r++) RowCodec.EncodeFp8Row(rows.AsSpan(r * hidden, hidden), bytes.AsSpan(r * hidden, hidden), scales.AsSpan(r * blocks, blocks));
        var back = new float[rows.Length];
        RowCodec.DecodeRows(dtype, bytes, System.Runtime.InteropServices.MemoryMarshal.AsBytes(scales.AsSpan()), n, hidden, back);
        return back;
    }

    internal static double RelativeError(float[] actual, float[] expected)
    {
        double diff = 0, scale = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            Assert.True(float.IsFinite(actual[i]), $"non-finite value at {i}");
            diff = Math.Max(diff, Math.Abs((double)actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }
        Assert.True(scale > 0, "reference is all zeros");
        return diff / scale;
    }

    /// <summary>Exact mode's dispatch: F32 rows give the local experts' sums up to the order of float additions.</summary>
    [Theory]
    [InlineData(1, 0)]
    [InlineData(3, 2)]
    public async Task F32DispatchEqualsLocalExperts(int nodes, int redundant)
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(nodes, redundant);
        int hidden = TinyCheckpoint.Config.HiddenSize;
        foreach (int layer in TinyCheckpoint.MoeLayers)
        {
            RemoteExperts remote = cluster.Streams.ForLayer(layer, TensorDType.F32);
            foreach (int n in new[] { 1, 9 })
            {
                float[] rows = TinyCheckpoint.Rows(n, seed: layer * 1000 + n);
                (int[] ids, float[] weights) = Route(layer, rows, n);
                var expected = new float[n * hidden];
                Local(layer).Experts.Run(rows, n, ids, weights, expected);
                var actual = new float[n * hidden];
                remote.Run(rows, n, ids, weights, actual);
                double error = RelativeError(actual, expected);
                Assert.True(error < 1e-6, $"layer {layer}, {n} rows on {nodes} nodes: f32 dispatch relative error {error:E2}");
            }
        }
    }

    /// <summary>
    /// The shared expert passed to Run (computed while the rows travel) adds exactly what adding it after the
    /// combine did: the same sums in the same order, bit for bit.
    /// </summary>
    [Fact]
    public async Task SharedExpertDuringDispatchEqualsSharedExpertAfterCombine()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 0);
        int hidden = TinyCheckpoint.Config.HiddenSize;
        foreach (int layer in TinyCheckpoint.MoeLayers)
        {
            RemoteExperts remote = cluster.Streams.ForLayer(layer, TensorDType.Bf16);
            Mlp shared = Local(layer).Shared ?? throw new InvalidOperationException("the tiny preset has a shared expert");
            foreach (int n in new[] { 1, 7 })
            {
                float[] rows = TinyCheckpoint.Rows(n, seed: layer * 10 + n);
                (int[] ids, float[] weights) = Route(layer, rows, n);
                var after = new float[n * hidden];
                remote.Run(rows, n, ids, weights, after);
                var sharedOut = new float[n * hidden];
                shared.Forward(rows, n, sharedOut);
                System.Numerics.Tensors.TensorPrimitives.Add(after, sharedOut, after);

                var during = new float[n * hidden];
                remote.Run(rows, n, ids, weights, during, shared);
                Assert.Equal(after, during);
                Assert.Contains(during, v => v != 0);
            }
        }
    }

    public static TheoryData<int, int> Layouts => new() { { 1, 0 }, { 2, 0 }, { 2, 1 }, { 2, 2 }, { 3, 0 }, { 3, 1 }, { 3, 2 } };

    [Theory]
    [MemberData(nameof(Layouts))]
    public async Task Bf16DispatchEqualsLocalExpertsOnBf16Rows(int nodes, int redundant)
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(nodes, redundant);
        int hidden = TinyCheckpoint.Config.HiddenSize;
        long routed = 0;
        var counts = new Dictionary<int, long[]>();
        foreach (int layer in TinyCheckpoint.MoeLayers)
        {
            counts[layer] = new long[TinyCheckpoint.Config.NRoutedExperts];
            // Counted on the way to the experts, as the attention node counts them.
            var remote = ExpertLoadCounter.For(cluster.Streams.ForLayer(layer, TensorDType.Bf16), counts[layer]);
            // Batches of 1 (decode), a few, and many rows (prefill), twice, so round robin reaches every replica.
            foreach (int n in new[] { 1, 5, 33, 1, 5, 33 })
            {
                float[] rows = TinyCheckpoint.Rows(n, seed: layer * 100 + n);
                (int[] ids, float[] weights) = Route(layer, rows, n);
                ids[0] = -1; // padding is skipped
                var expected = new float[n * hidden];
                Local(layer).Experts.Run(Roundtrip(rows, n, TensorDType.Bf16), n, ids, weights, expected);
                var actual = new float[n * hidden];
                remote.Run(rows, n, ids, weights, actual);
                // Same rows, same weights: only float summation order differs (node partial sums, batch shapes).
                Assert.True(RelativeError(actual, expected) < 1e-5, $"layer {layer} n {n}: {RelativeError(actual, expected):E2}");
                routed += ids.Count(e => e >= 0);
            }
        }

        // Every routed (row, expert) pair was counted once on the attention side and once on some node.
        Assert.Equal(routed, TinyCheckpoint.MoeLayers.Sum(l => counts[l].Sum()));
        ExpertNodeInfo[] infos = await cluster.Streams.GetInfoAsync();
        Assert.Equal(routed, infos.Sum(i => i.SlotTokens.Sum(t => (long)t)));
        // Per logical expert, the nodes' slot counts add up to the attention side's count, and replicas share it.
        foreach (int layer in TinyCheckpoint.MoeLayers)
        {
            LayerPlacement placement = cluster.Plan.Layer(layer);
            for (int e = 0; e < placement.Experts; e++)
            {
                var perReplica = infos.Select(info => info.Slots.Select((s, i) => (s, i)).Where(x => x.s.Layer == layer && x.s.Expert == e)
                    .Sum(x => (long)info.SlotTokens[x.i])).Where((_, node) => placement.ReplicasOf(e).ToArray().Any(r => r.Node == node)).ToArray();
                Assert.Equal(counts[layer][e], perReplica.Sum());
                if (perReplica.Length > 1 && perReplica.Sum() >= 2 * perReplica.Length)
                    Assert.True(perReplica.Max() - perReplica.Min() <= 1, $"layer {layer} expert {e}: replicas served {string.Join("/", perReplica)}");
            }
        }
    }

    [Fact]
    public async Task Fp8WeightCheckpointsServeLikeTheirLocalExperts()
    {
        // DeepSeek-V3 ships FP8 E4M3 weights with 128x128 block scales: a node loads each expert with its scales.
        ModelConfig config = SyntheticModel.ConfigFor(SyntheticPresets.Tiny, DType.F8E4M3);
        string dir = TestCheckpoints.Dir(config, TinyCheckpoint.Seed, DType.F8E4M3);
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(2, 2, dir);
        using var local = Checkpoint.Open(dir);
        int hidden = config.HiddenSize, n = 9;
        foreach (int layer in TinyCheckpoint.MoeLayers)
        {
            Moe moe = Moe.Load(local, config, layer);
            Assert.Equal(DType.F8E4M3, local.Get($"model.layers.{layer}.mlp.experts.0.up_proj.weight").DType);
            float[] rows = TinyCheckpoint.Rows(n, layer);
            var ids = new int[n * config.NumExpertsPerTok];
            var weights = new float[ids.Length];
            moe.Gate.Route(rows, n, ids, weights);
            var expected = new float[n * hidden];
            moe.Experts.Run(Roundtrip(rows, n, TensorDType.Bf16), n, ids, weights, expected);
            var actual = new float[n * hidden];
            await Task.Run(() => cluster.Streams.ForLayer(layer, TensorDType.Bf16).Run(rows, n, ids, weights, actual));
            Assert.True(RelativeError(actual, expected) < 1e-5, $"layer {layer}: {RelativeError(actual, expected):E2}");
        }
    }

    [Fact]
    public async Task LongPrefillFramesAboveTheDefaultMessageLimitPass()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(1, 0);
        int layer = TinyCheckpoint.MoeLayers[0], hidden = TinyCheckpoint.Config.HiddenSize;
        // 16,500 rows of F32 partial sums: 4.2 MB in one combine frame, over gRPC's usual 4 MB limit.
        int n = 16_500;
        float[] rows = TinyCheckpoint.Rows(n, 9);
        (int[] ids, float[] weights) = Route(layer, rows, n);
        // Only each row's first choice, to keep the compute small: the frame size is what is tested.
        for (int i = 0; i < ids.Length; i++) if (i % TinyCheckpoint.Config.NumExpertsPerTok != 0) ids[i] = -1;
        var expected = new float[n * hidden];
        Local(layer).Experts.Run(Roundtrip(rows, n, TensorDType.Bf16), n, ids, weights, expected);
        var actual = new float[n * hidden];
        await Task.Run(() => cluster.Streams.ForLayer(layer, TensorDType.Bf16).Run(rows, n, ids, weights, actual));
        Assert.True(RelativeError(actual, expected) < 1e-5);
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(3, 2)]
    public async Task Fp8DispatchIsExactOnFp8RowsAndWithinSixPercentOfFloatRows(int nodes, int redundant)
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(nodes, redundant);
        int hidden = TinyCheckpoint.Config.HiddenSize, n = 24;
        double worst = 0;
        foreach (int layer in TinyCheckpoint.MoeLayers)
        {
            RemoteExperts remote = cluster.Streams.ForLayer(layer, TensorDType.Fp8E4M3);
            float[] rows = TinyCheckpoint.Rows(n, seed: layer);
            (int[] ids, float[] weights) = Route(layer, rows, n);
            var actual = new float[n * hidden];
            remote.Run(rows, n, ids, weights, actual);

            var onFp8Rows = new float[n * hidden];
            Local(layer).Experts.Run(Roundtrip(rows, n, TensorDType.Fp8E4M3), n, ids, weights, onFp8Rows);
            Assert.True(RelativeError(actual, onFp8Rows) < 1e-5, $"layer {layer}: {RelativeError(actual, onFp8Rows):E2} from local experts on the same FP8 rows");

            var onFloatRows = new float[n * hidden];
            Local(layer).Experts.Run(rows, n, ids, weights, onFloatRows);
            worst = Math.Max(worst, RelativeError(actual, onFloatRows));
        }
        // E4M3 rounds each input by up to 1/16 of its value; the experts' outputs stay within that (measured: 4%).
        Assert.True(worst < 0.0625, $"fp8 dispatch relative error {worst:E2}");
        Assert.True(worst > 1e-4, "fp8 rounding should be visible");
    }
}
