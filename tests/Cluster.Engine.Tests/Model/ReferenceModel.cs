using Cluster.Engine.Config;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Model;

/// <summary>
/// DeepSeek-V3 written straight from Hugging Face's modeling_deepseek_v3.py in float64: full-sequence causal
/// attention with decompressed K/V, the noaux_tc router, experts, shared experts. Slow and simple on purpose;
/// it shares no code with the engine beyond reading the stored weights.
/// </summary>
internal sealed class ReferenceModel(ModelConfig c, ITensorSource s)
{
    private double[,] M(string name)
    {
        Weight w = s.Get(name);
        var m = new double[w.Rows, w.Cols];
        var row = new float[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            w.DequantizeRow(r, row);
            for (int k = 0; k < w.Cols; k++) m[r, k] = row[k];
        }
        return m;
    }

    private double[] V(string name)
    {
        Weight w = s.Get(name);
        var v = new double[w.Rows];
        var one = new float[1];
        for (int i = 0; i < v.Length; i++) { w.DequantizeRow(i, one); v[i] = one[0]; }
        return v;
    }

    private static double[] Linear(double[,] w, double[] x)
    {
        var y = new double[w.GetLength(0)];
        for (int r = 0; r < y.Length; r++)
        {
            double sum = 0;
            for (int k = 0; k < x.Length; k++) sum += w[r, k] * x[k];
            y[r] = sum;
        }
        return y;
    }

    private double[] Norm(double[] x, double[] w)
    {
        double ms = 0;
        foreach (double v in x) ms += v * v;
        double inv = 1 / Math.Sqrt(ms / x.Length + c.RmsNormEps);
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * inv * w[i];
        return y;
    }

    private static double Silu(double x) => x / (1 + Math.Exp(-x));

    private double[] Mlp(string p, double[] x)
    {
        double[] g = Linear(M(p + ".gate_proj.weight"), x), u = Linear(M(p + ".up_proj.weight"), x);
        for (int i = 0; i < g.Length; i++) g[i] = Silu(g[i]) * u[i];
        return Linear(M(p + ".down_proj.weight"), g);
    }

    /// <summary>The router's choice for one token: expert ids and weights.</summary>
    public (int[] Ids, double[] Weights) Route(int layer, double[] x)
    {
        string p = $"model.layers.{layer}.mlp.gate";
        double[] logits = Linear(M(p + ".weight"), x), bias = V(p + ".e_score_correction_bias");
        int e = c.NRoutedExperts, per = e / c.NGroup;
        double[] score = logits.Select(l => 1 / (1 + Math.Exp(-l))).ToArray();
        double[] choice = score.Select((v, i) => v + bias[i]).ToArray();
        var groupScore = Enumerable.Range(0, c.NGroup)
            .Select(g => choice.Skip(g * per).Take(per).OrderByDescending(v => v).Take(2).Sum()).ToArray();
        var kept = Enumerable.Range(0, c.NGroup).OrderByDescending(g => groupScore[g]).ThenBy(g => g).Take(c.TopkGroup).ToHashSet();
        int[] ids = Enumerable.Range(0, e).Where(i => kept.Contains(i / per))
            .OrderByDescending(i => choice[i]).ThenBy(i => i).Take(c.NumExpertsPerTok).ToArray();
        double[] w = ids.Select(i => score[i]).ToArray();
        double sum = w.Sum();
        for (int k = 0; k < w.Length; k++) w[k] = (c.NormTopkProb ? w[k] / (sum + 1e-20) : w[k]) * c.RoutedScalingFactor;
        return (ids, w);
    }

    private double[] Moe(int layer, double[] x)
    {
        var (ids, weights) = Route(layer, x);
        var y = new double[x.Length];
        for (int k = 0; k < ids.Length; k++)
        {
            double[] o = Mlp($"model.layers.{layer}.mlp.experts.{ids[k]}", x);
            for (int i = 0; i < y.Length; i++) y[i] += weights[k] * o[i];
        }
        if (c.NSharedExperts > 0)
        {
            double[] sh = Mlp($"model.layers.{layer}.mlp.shared_experts", x);
            for (int i = 0; i < y.Length; i++) y[i] += sh[i];
        }
        return y;
    }

    private double[][] Attention(int layer, double[][] x)
    {
        string p = $"model.layers.{layer}.self_attn";
        int T = x.Length, H = c.NumAttentionHeads, nope = c.QkNopeHeadDim, rope = c.QkRopeHeadDim, vd = c.VHeadDim, lora = c.KvLoraRank;
        var (inv, att) = ReferenceRope.Frequencies(c);
        double[][] q = new double[T][], kPe = new double[T][], kv = new double[T][];
        for (int t = 0; t < T; t++)
        {
            q[t] = c.QLoraRank is null
                ? Linear(M(p + ".q_proj.weight"), x[t])
                : Linear(M(p + ".q_b_proj.weight"), Norm(Linear(M(p + ".q_a_proj.weight"), x[t]), V(p + ".q_a_layernorm.weight")));
            double[] a = Linear(M(p + ".kv_a_proj_with_mqa.weight"), x[t]);
            kv[t] = Linear(M(p + ".kv_b_proj.weight"), Norm(a[..lora], V(p + ".kv_a_layernorm.weight")));
            kPe[t] = ReferenceRope.Apply(a[lora..], t, inv, att, c.RopeInterleave);
        }
        double scale = 1 / Math.Sqrt(nope + rope);
        if (c.RopeScaling is { MScaleAllDim: not 0 } y)
        {
            double m = 0.1 * y.MScaleAllDim * Math.Log(y.Factor) + 1;
            scale *= m * m;
        }
        var o = new double[T][];
        for (int t = 0; t < T; t++)
        {
            o[t] = new double[H * vd];
            for (int h = 0; h < H; h++)
            {
                double[] qh = q[t][(h * (nope + rope))..((h + 1) * (nope + rope))];
                double[] qPe = ReferenceRope.Apply(qh[nope..], t, inv, att, c.RopeInterleave);
                var sc = new double[t + 1];
                for (int u = 0; u <= t; u++)
                {
                    double dot = 0;
                    for (int i = 0; i < nope; i++) dot += qh[i] * kv[u][h * (nope + vd) + i];
                    for (int i = 0; i < rope; i++) dot += qPe[i] * kPe[u][i];
                    sc[u] = dot * scale;
                }
                double max = sc.Max(), z = sc.Sum(v => Math.Exp(v - max));
                for (int u = 0; u <= t; u++)
                {
                    double pr = Math.Exp(sc[u] - max) / z;
                    for (int i = 0; i < vd; i++) o[t][h * vd + i] += pr * kv[u][h * (nope + vd) + nope + i];
                }
            }
            o[t] = Linear(M(p + ".o_proj.weight"), o[t]);
        }
        return o;
    }

    /// <summary>Logits of every position of <paramref name="tokens"/>.</summary>
    public double[][] Logits(int[] tokens)
    {
        double[,] embed = M("model.embed_tokens.weight");
        int T = tokens.Length, d = c.HiddenSize;
        var h = new double[T][];
        for (int t = 0; t < T; t++) h[t] = Enumerable.Range(0, d).Select(i => embed[tokens[t], i]).ToArray();
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}";
            double[] inNorm = V(p + ".input_layernorm.weight"), postNorm = V(p + ".post_attention_layernorm.weight");
            double[][] a = Attention(l, h.Select(v => Norm(v, inNorm)).ToArray());
            for (int t = 0; t < T; t++)
            {
                for (int i = 0; i < d; i++) h[t][i] += a[t][i];
                double[] n = Norm(h[t], postNorm);
                double[] f = c.IsMoeLayer(l) ? Moe(l, n) : Mlp(p + ".mlp", n);
                for (int i = 0; i < d; i++) h[t][i] += f[i];
            }
        }
        double[,] head = M(c.TieWordEmbeddings && !s.Contains("lm_head.weight") ? "model.embed_tokens.weight" : "lm_head.weight");
        double[] final = V("model.norm.weight");
        return h.Select(v => Linear(head, Norm(v, final))).ToArray();
    }
}
