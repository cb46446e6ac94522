using Cluster.Engine.Backend;
using Cluster.Engine.Cache;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;
using Cluster.Engine.Tests.Model;

namespace Cluster.Engine.Tests.Backend;

/// <summary>The backend seam: the float64 reference backend plugged in through the same interfaces gives the CPU backend's logits.</summary>
public class ReferenceBackendTests
{
    /// <summary>
    /// Every logit of a naive prefill, an absorbed prefill continuing it and greedy decode steps, through a paged
    /// cache whose block memory is the backend's (F32, so neither side's rounding to BF16 can amplify the other's).
    /// </summary>
    private static float[] Run(IBackend backend)
    {
        var config = TinyModel.Config(DType.BF16);
        Transformer model = Transformer.Load(config, TinyModel.Weights(DType.BF16), backend: backend);
        var manager = new LatentCacheManager(config, new LatentCacheOptions { BlockSize = 4, BudgetBytes = 1 << 20, Format = LatentFormat.F32 }, backend);
        int[] tokens = TinyModel.Tokens;
        int vocab = config.VocabSize, steps = 4;
        PagedLatentCache cache = manager.TryStart(tokens, tokens.Length + steps, reusePrefix: false)!;
        var logits = new float[(tokens.Length + steps) * vocab];
        model.Prefill(tokens.AsSpan(0, 6), cache, AttentionPath.Naive, logits.AsSpan(0, 6 * vocab));
        model.Prefill(tokens.AsSpan(6), cache, AttentionPath.Absorbed, logits.AsSpan(6 * vocab, (tokens.Length - 6) * vocab));
        // Greedy on the CPU backend's choice would make the two runs diverge on a near tie; feed fixed tokens instead.
        for (int i = 0; i < steps; i++)
            model.Decode([(17 * i + 5) % vocab], [cache], logits.AsSpan((tokens.Length + i) * vocab, vocab));
        return logits;
    }

    [Fact]
    public void ReferenceBackendGivesTheCpuBackendsLogits()
    {
        float[] cpu = Run(CpuBackend.Default), reference = Run(new ReferenceBackend());
        Assert.InRange(TinyModel.RelativeError(cpu, reference), 0, 1e-5);
        // Different arithmetic, not the same code twice.
        Assert.NotEqual(cpu, reference);
    }

    [Fact]
    public void ReferenceExpertsGiveTheCpuExpertsPartialSums()
    {
        var config = TinyModel.Config(DType.BF16);
        ITensorSource weights = TinyModel.Weights(DType.BF16);
        int hidden = config.HiddenSize, n = 5, k = config.NumExpertsPerTok, layer = 1;
        float[] rows = Kernels.MatMulTests.Random(n * hidden, 3);
        var ids = new int[n * k];
        var w = new float[n * k];
        Moe.Load(weights, config, layer).Gate.Route(rows, n, ids, w);
        ids[3] = -1;
        int[] hosted = [.. Enumerable.Range(0, config.NRoutedExperts).Where(e => e % 2 == 0)];
        for (int i = 0; i < ids.Length; i++) if (ids[i] % 2 == 1) ids[i] = -1;

        IHostedExperts cpu = CpuBackend.Default.LoadExperts(weights, config, layer, hosted), reference = new ReferenceBackend().LoadExperts(weights, config, layer, hosted);
        Assert.True(cpu.Hosts(0) && !cpu.Hosts(1) && reference.Hosts(0) && !reference.Hosts(1));
        float[] a = new float[n * hidden], b = new float[n * hidden];
        cpu.Run(rows, n, ids, w, a);
        reference.Run(rows, n, ids, w, b);
        Assert.InRange(TinyModel.RelativeError(a, b), 0, 1e-5);
    }
}
