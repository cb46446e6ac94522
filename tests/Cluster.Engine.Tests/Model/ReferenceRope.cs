using Cluster.Engine.Config;

namespace Cluster.Engine.Tests.Model;

/// <summary>RoPE and YaRN written out in float64 from the formulas (HF's _compute_yarn_parameters), independent of the engine.</summary>
internal static class ReferenceRope
{
    public static (double[] InvFreq, double AttentionFactor) Frequencies(ModelConfig c)
    {
        int d = c.QkRopeHeadDim;
        double b = c.RopeTheta;
        double[] pos = new double[d / 2], inv = new double[d / 2];
        for (int j = 0; j < d / 2; j++) { pos[j] = Math.Pow(b, 2.0 * j / d); inv[j] = 1 / pos[j]; }
        if (c.RopeScaling is not { } y) return (inv, 1);
        static double MScale(double s, double m) => s <= 1 ? 1 : 0.1 * m * Math.Log(s) + 1;
        double Dim(double rot) => d * Math.Log(y.OriginalMaxPositionEmbeddings / (rot * 2 * Math.PI)) / (2 * Math.Log(b));
        double lo = Math.Max(0, Math.Floor(Dim(y.BetaFast))), hi = Math.Min(d - 1, Math.Ceiling(Dim(y.BetaSlow)));
        if (lo == hi) hi += 0.001;
        for (int j = 0; j < d / 2; j++)
        {
            double ramp = Math.Min(1, Math.Max(0, (j - lo) / (hi - lo)));
            double extrapolationFactor = 1 - ramp;
            inv[j] = 1 / (y.Factor * pos[j]) * (1 - extrapolationFactor) + 1 / pos[j] * extrapolationFactor;
        }
        double att = y.MScale != 0 && y.MScaleAllDim != 0 ? MScale(y.Factor, y.MScale) / MScale(y.Factor, y.MScaleAllDim) : MScale(y.Factor, 1);
        return (inv, att);
    }

    /// <summary>HF: optionally view (d/2, 2) and transpose to de-interleave, then x*cos + rotate_half(x)*sin with cos = cat(f, f).</summary>
    public static double[] Apply(double[] x, int position, double[] invFreq, double att, bool interleave)
    {
        int d = x.Length, h = d / 2;
        double[] a = new double[d];
        for (int j = 0; j < d; j++) a[j] = interleave ? (j < h ? x[2 * j] : x[2 * (j - h) + 1]) : x[j];
        double[] o = new double[d];
        for (int j = 0; j < d; j++)
        {
            double f = position * invFreq[j % h];
            double rotated = j < h ? -a[j + h] : a[j - h];
            o[j] = a[j] * Math.Cos(f) * att + rotated * Math.Sin(f) * att;
        }
        return o;
    }
}
