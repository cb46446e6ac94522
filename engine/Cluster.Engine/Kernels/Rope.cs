namespace Cluster.Engine.Kernels;

public static class Rope
{
    /// <summary>
    /// Rotates one rope vector (length 2·cos.Length) in place with HF's rotate_half convention:
    /// out[j] = a[j]·cos[j] − a[j+h]·sin[j], out[j+h] = a[j+h]·cos[j] + a[j]·sin[j]. When
    /// <paramref name="interleaved"/>, the stored pairs (2j, 2j+1) are first de-interleaved into halves, as HF's
    /// apply_rotary_pos_emb_interleave does; the result stays in the de-interleaved order for both q and k, so
    /// their dot products equal DeepSeek's complex-pair rotation.
    /// </summary>
    public static void Apply(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, bool interleaved)
    {
        int h = cos.Length;
        if (x.Length != 2 * h || sin.Length != h) throw new ArgumentException($"rope: vector of {x.Length} for {h} frequencies");
        if (interleaved)
        {
            Span<float> pairs = stackalloc float[x.Length];
            x.CopyTo(pairs);
            for (int j = 0; j < h; j++)
            {
                float a = pairs[2 * j], b = pairs[2 * j + 1];
                x[j] = a * cos[j] - b * sin[j];
                x[j + h] = b * cos[j] + a * sin[j];
            }
        }
        else
        {
            for (int j = 0; j < h; j++)
            {
                float a = x[j], b = x[j + h];
                x[j] = a * cos[j] - b * sin[j];
                x[j + h] = b * cos[j] + a * sin[j];
            }
        }
    }
}
