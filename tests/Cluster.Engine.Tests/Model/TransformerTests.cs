using Cluster.Engine.Cache;
using Cluster.Engine.Model;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;
using Cluster.Engine.Checkpoints;

namespace Cluster.Engine.Tests.Model;

public class TransformerTests
{
    private static float[] Prefill(Transformer m, int[] tokens, AttentionPath path)
    {
        var logits = new float[tokens.Length * m.Config.VocabSize];
        m.Prefill(tokens, new SequenceCache(m.Config), path, logits);
        return logits;
    }

    private static float[] DecodeOneByOne(Transformer m, int[] tokens)
    {
        int vocab = m.Config.VocabSize;
        var logits = new float[tokens.Length * vocab];
        var cache = new SequenceCache(m.Config, initialCapacity: 2);
        ILatentCache[] caches = [cache];
        for (int t = 0; t < tokens.Length; t++) m.Decode(tokens.AsSpan(t, 1), caches, logits.AsSpan(t * vocab, vocab));
        Assert.Equal(tokens.Length, cache.Length);
        return logits;
    }

    [Fact]
    public void EngineMatchesFloat64Reference()
    {
        int[] tokens = TinyModel.Tokens[..6];
        var reference = new ReferenceModel(TinyModel.Config(DType.BF16), TinyModel.Weights(DType.BF16)).Logits(tokens);
        float[] expected = reference.SelectMany(r => r.Select(v => (float)v)).ToArray();
        float[] naive = Prefill(TinyModel.Load(), tokens, AttentionPath.Naive);
        Assert.InRange(TinyModel.RelativeError(naive, expected), 0, 1e-3);
        float[] decode = DecodeOneByOne(TinyModel.Load(), tokens);
        Assert.InRange(TinyModel.RelativeError(decode, expected), 0, 1e-3);
    }

    [Fact]
    public void PrefillEqualsDecode()
    {
        float[] prefill = Prefill(TinyModel.Load(), TinyModel.Tokens, AttentionPath.Naive);
        float[] decode = DecodeOneByOne(TinyModel.Load(), TinyModel.Tokens);
        Assert.InRange(TinyModel.RelativeError(decode, prefill), 0, 1e-4);
    }

    [Fact]
    public void AbsorbedEqualsNaive()
    {
        float[] naive = Prefill(TinyModel.Load(), TinyModel.Tokens, AttentionPath.Naive);
        float[] absorbed = Prefill(TinyModel.Load(), TinyModel.Tokens, AttentionPath.Absorbed);
        Assert.InRange(TinyModel.RelativeError(absorbed, naive), 0, 1e-5);
    }

    [Theory]
    [InlineData(6)]
    [InlineData(17)]
    public void AbsorbedEqualsNaiveForAnyHeadCount(int heads)
    {
        // Head counts that do not split evenly into the absorbed path's head groups or across threads.
        var preset = SyntheticPresets.Tiny with { NumAttentionHeads = heads };
        var weights = TinyModel.Create(preset, DType.BF16);
        var config = SyntheticModel.ConfigFor(preset, DType.BF16);
        float[] naive = Prefill(Transformer.Load(config, weights), TinyModel.Tokens, AttentionPath.Naive);
        float[] absorbed = Prefill(Transformer.Load(config, weights), TinyModel.Tokens, AttentionPath.Absorbed);
        float[] decode = DecodeOneByOne(Transformer.Load(config, weights), TinyModel.Tokens);
        Assert.InRange(TinyModel.RelativeError(absorbed, naive), 0, 1e-5);
        Assert.InRange(TinyModel.RelativeError(decode, naive), 0, 1e-4);
    }

    [Fact]
    public void AbsorbedEqualsNaiveOverAContextOfSeveralSplits()
    {
        // 1,200 positions: the absorbed path's later rows merge three splits of the context, each of many chunks.
        int[] tokens = new int[1200];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = (i * 7919 + 13) % 1024;
        Transformer m = TinyModel.Load();
        float[] naive = Prefill(m, tokens, AttentionPath.Naive), absorbed = Prefill(m, tokens, AttentionPath.Absorbed);
        Assert.InRange(TinyModel.RelativeError(absorbed, naive), 0, 1e-5);
    }

    [Fact]
    public void ChunkedPrefillContinuesTheCache()
    {
        Transformer m = TinyModel.Load();
        int vocab = m.Config.VocabSize, n = TinyModel.Tokens.Length;
        float[] whole = Prefill(m, TinyModel.Tokens, AttentionPath.Naive);
        var cache = new SequenceCache(m.Config);
        var logits = new float[n * vocab];
        m.Prefill(TinyModel.Tokens.AsSpan(0, 4), cache, AttentionPath.Naive, logits);
        m.Prefill(TinyModel.Tokens.AsSpan(4), cache, AttentionPath.Absorbed, logits.AsSpan(4 * vocab));
        Assert.InRange(TinyModel.RelativeError(logits, whole), 0, 1e-4);
    }

    [Fact]
    public void BatchedDecodeEqualsSeparateSequences()
    {
        int[] a = [5, 9, 300, 2], b = [700, 12, 12, 40, 41, 8];
        Transformer m = TinyModel.Load();
        int vocab = m.Config.VocabSize;
        float[] aAlone = Prefill(m, a, AttentionPath.Naive), bAlone = Prefill(m, b, AttentionPath.Naive);
        // Both sequences start with a prefill of different lengths, then decode together in one batch.
        var ca = new SequenceCache(m.Config);
        var cb = new SequenceCache(m.Config);
        m.Prefill(a.AsSpan(0, 2), ca, AttentionPath.Naive, new float[2 * vocab]);
        m.Prefill(b.AsSpan(0, 4), cb, AttentionPath.Naive, new float[4 * vocab]);
        var step = new float[2 * vocab];
        for (int i = 0; i < 2; i++)
        {
            m.Decode([a[2 + i], b[4 + i]], [ca, cb], step);
            Assert.InRange(TinyModel.RelativeError(step.AsSpan(0, vocab), aAlone.AsSpan((2 + i) * vocab, vocab)), 0, 1e-4);
            Assert.InRange(TinyModel.RelativeError(step.AsSpan(vocab, vocab), bAlone.AsSpan((4 + i) * vocab, vocab)), 0, 1e-4);
        }
    }

    [Fact]
    public void LastRowOnlyEqualsLastRowOfAll()
    {
        Transformer m = TinyModel.Load();
        int vocab = m.Config.VocabSize, n = TinyModel.Tokens.Length;
        float[] all = Prefill(m, TinyModel.Tokens, AttentionPath.Naive);
        var last = new float[vocab];
        m.Prefill(TinyModel.Tokens, new SequenceCache(m.Config), AttentionPath.Naive, last, lastRowOnly: true);
        Assert.InRange(TinyModel.RelativeError(last, all.AsSpan((n - 1) * vocab, vocab)), 0, 1e-6);
    }

    [Fact]
    public void Fp8EqualsItsDequantisedCopy()
    {
        // The FP8 model against an F32 model holding exactly the dequantised values: any difference is the kernel's.
        ITensorSource fp8 = TinyModel.Weights(DType.F8E4M3);
        var dequantised = new InMemoryTensorSource();
        foreach (string name in fp8.Names)
        {
            Weight w = fp8.Get(name);
            if (w.DType != DType.F8E4M3) { dequantised.Add(w); continue; }
            var values = new float[w.Elements];
            for (int r = 0; r < w.Rows; r++) w.DequantizeRow(r, values.AsSpan(r * w.Cols, w.Cols));
            dequantised.Add(Weight.FromFloats(name, w.Shape, values, DType.F32));
        }
        var config = TinyModel.Config(DType.F8E4M3);
        float[] a = Prefill(Transformer.Load(config, fp8), TinyModel.Tokens, AttentionPath.Naive);
        float[] b = Prefill(Transformer.Load(config, dequantised), TinyModel.Tokens, AttentionPath.Naive);
        Assert.InRange(TinyModel.RelativeError(a, b), 0, 1e-4);
        float[] bf16 = Prefill(TinyModel.Load(DType.BF16), TinyModel.Tokens, AttentionPath.Naive);
        Assert.True(TinyModel.RelativeError(a, bf16) > 0, "FP8 and BF16 weights should differ by their rounding");
    }

    [Fact]
    public void QProjVariantMatchesReference()
    {
        var preset = SyntheticPresets.Tiny with { QLoraRank = null, RopeInterleave = false, RopeScaling = null, NGroup = 1, TopkGroup = 1, NormTopkProb = false };
        var weights = TinyModel.Create(preset, DType.BF16);
        Assert.True(weights.Contains("model.layers.0.self_attn.q_proj.weight"));
        int[] tokens = [3, 1, 4, 1, 5];
        var expected = new ReferenceModel(preset, weights).Logits(tokens).SelectMany(r => r.Select(v => (float)v)).ToArray();
        Transformer m = Transformer.Load(preset, weights);
        Assert.InRange(TinyModel.RelativeError(Prefill(m, tokens, AttentionPath.Naive), expected), 0, 1e-3);
        Assert.InRange(TinyModel.RelativeError(DecodeOneByOne(m, tokens), expected), 0, 1e-3);
    }

    [Fact]
    public void BadInputIsRejectedWithItsName()
    {
        Transformer m = TinyModel.Load();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Prefill(m, [1, 1024], AttentionPath.Naive));
        Assert.Contains("token id 1024", e.Message);
        var weights = new InMemoryTensorSource(TinyModel.Weights(DType.BF16).Names
            .Where(n => n != "model.layers.1.self_attn.o_proj.weight").Select(TinyModel.Weights(DType.BF16).Get));
        var missing = Assert.ThrowsAny<Exception>(() => Transformer.Load(TinyModel.Config(DType.BF16), weights));
        Assert.Contains("model.layers.1.self_attn.o_proj.weight", missing.Message);
    }

    [Fact]
    public void LoadReportsProgressToCompletion()
    {
        var reports = new List<double>();
        Transformer.Load(TinyModel.Config(DType.BF16), TinyModel.Weights(DType.BF16), new SyncProgress(reports.Add));
        Assert.Equal(1.0, reports[^1]);
        Assert.True(reports.Count >= TinyModel.Config(DType.BF16).NumHiddenLayers);
    }

    private sealed class SyncProgress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }
}
