using Cluster.Engine.Cache;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Tests.Backend;
using Cluster.Engine.Tests.Model;

namespace Cluster.Engine.Tests.Kernels;

/// <summary>
/// The CPU backend's absorbed attention (chunks of cached rows, online softmax, splits of a long context merged in
/// order) against the float64 reference's plain softmax over every position, through paged BF16 block memory.
/// </summary>
public class LatentAttentionTests
{
    private const int Heads = 5, Latent = 40, Rope = 8, Width = Latent + Rope, BlockSize = 16;

    /// <summary>Rows: a decode row at 1,500 positions (three splits), a prefill row of the same sequence mid-way, a short sequence.</summary>
    private static readonly int[] Positions = [1499, 600, 69], Sequences = [0, 0, 1];

    private static (ForwardBatch Batch, CpuLatentBlocks Memory, float[] Q) Setup()
    {
        int[] lengths = [1500, 70];
        int width = (lengths[0] + BlockSize - 1) / BlockSize;
        var memory = new CpuLatentBlocks(blocks: 2 * width, BlockSize, layers: 2, Width, LatentFormat.BF16);
        var tables = new int[2 * width];
        Array.Fill(tables, -1);
        int next = 0;
        float[] values = MatMulTests.Random(Width * lengths[0], 11);
        for (int s = 0; s < 2; s++)
        {
            // Blocks out of order, as a block manager hands them out.
            for (int b = 0; b * BlockSize < lengths[s]; b++) tables[s * width + b] = (next++ * 7) % (2 * width);
            for (int p = 0; p < lengths[s]; p++)
                memory.Write(1, tables[s * width + p / BlockSize] * BlockSize + p % BlockSize, values.AsSpan(((p * 3 + s) % lengths[0]) * Width, Width));
        }
        var batch = new ForwardBatch(new int[3], Positions, Sequences, new int[3], tables, width);
        return (batch, memory, MatMulTests.Random(3 * Heads * Width, 12, 2));
    }

    private static float[] Attend(Engine.Backend.IKernels kernels)
    {
        (ForwardBatch batch, CpuLatentBlocks memory, float[] q) = Setup();
        var context = new float[3 * Heads * Latent];
        kernels.LatentAttention(q, Heads, batch, memory, layer: 1, scale: 1 / MathF.Sqrt(Width), Latent, context);
        return context;
    }

    [Fact]
    public void MatchesTheFloat64ReferenceOverALongContext()
    {
        float[] cpu = Attend(CpuBackend.Default.Kernels), reference = Attend(new ReferenceKernels());
        Assert.InRange(TinyModel.RelativeError(cpu, reference), 0, 1e-5);
        Assert.NotEqual(cpu, reference);
    }

    [Fact]
    public void DoesNotDependOnTheThreadCount()
    {
        float[] one = Attend(new CpuKernels(new WorkerPool(1))), three = Attend(new CpuKernels(new WorkerPool(3)));
        Assert.Equal(one, three);
    }
}
