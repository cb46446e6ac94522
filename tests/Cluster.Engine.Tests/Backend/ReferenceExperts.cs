using Cluster.Engine.Backend;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Backend;

/// <summary>
/// One layer's routed experts held as float64 matrices and run row by row, choice by choice: the plainest
/// <see cref="IHostedExperts"/>, standing where a GPU expert backend's would.
/// </summary>
internal sealed class ReferenceExperts(int layer, int hidden, double[]?[][] experts) : IHostedExperts
{
    public int Layer => layer;

    public bool Hosts(int expert) => (uint)expert < (uint)experts.Length && experts[expert] is not null;

    /// <summary>Each expert as [gate_proj, up_proj, down_proj], row-major float64.</summary>
    public static ReferenceExperts Load(ITensorSource source, int layer, int hidden, int intermediate, int count, IEnumerable<int>? hosted)
    {
        var experts = new double[]?[count][];
        foreach (int e in hosted ?? Enumerable.Range(0, count))
        {
            string p = $"model.layers.{layer}.mlp.experts.{e}";
            experts[e] = [Matrix(source.Get(p + ".gate_proj.weight")), Matrix(source.Get(p + ".up_proj.weight")), Matrix(source.Get(p + ".down_proj.weight"))];
        }
        return new ReferenceExperts(layer, hidden, experts);
    }

    private static double[] Matrix(Weight w)
    {
        var m = new double[w.Rows * w.Cols];
        var row = new float[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            w.DequantizeRow(r, row);
            for (int c = 0; c < row.Length; c++) m[r * w.Cols + c] = row[c];
        }
        return m;
    }

    public void Run(ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output, Mlp? shared = null)
    {
        if (n == 0) return;
        int k = ids.Length / n;
        var x = new double[hidden];
        var sum = new double[hidden];
        for (int r = 0; r < n; r++)
        {
            for (int i = 0; i < hidden; i++) x[i] = rows[r * hidden + i];
            Array.Clear(sum);
            for (int j = 0; j < k; j++)
            {
                int e = ids[r * k + j];
                if (e < 0) continue;
                if (!Hosts(e)) throw new InvalidOperationException($"layer {layer}: expert {e} is not loaded here");
                double[] y = Forward(experts[e]!, x);
                for (int i = 0; i < hidden; i++) sum[i] += weights[r * k + j] * y[i];
            }
            for (int i = 0; i < hidden; i++) output[r * hidden + i] = (float)sum[i];
        }
        if (shared is null) return;
        var sharedOut = new float[n * hidden];
        shared.Forward(rows[..(n * hidden)], n, sharedOut);
        for (int i = 0; i < n * hidden; i++) output[i] += sharedOut[i];
    }

    /// <summary>down(silu(gate(x)) * up(x)).</summary>
    private double[] Forward(double[][] expert, double[] x)
    {
        int inter = expert[0].Length / hidden;
        var act = new double[inter];
        for (int j = 0; j < inter; j++)
        {
            double g = 0, u = 0;
            for (int i = 0; i < hidden; i++)
            {
                g += expert[0][j * hidden + i] * x[i];
                u += expert[1][j * hidden + i] * x[i];
            }
            act[j] = g / (1 + Math.Exp(-g)) * u;
        }
        var y = new double[hidden];
        for (int i = 0; i < hidden; i++)
        {
            double s = 0;
            for (int j = 0; j < inter; j++) s += expert[2][i * inter + j] * act[j];
            y[i] = s;
        }
        return y;
    }
}
