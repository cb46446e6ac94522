using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;
using Cluster.Engine.Cache;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Model;

/// <summary>
/// The logits of the tiny and small presets, bit for bit, against committed SHA-256 checksums: a prompt through
/// prefill and greedy decode steps on both attention paths, through the contiguous F32 cache and the paged BF16
/// cache. Any change that moves a single bit of any logit (an accumulation order, a kernel split, a cache
/// layout) fails here; a change meant to alter the numbers must update the constants and say why.
/// </summary>
/// <remarks>
/// What the bits depend on:
/// - The SIMD width, truly: the kernels accumulate in 16 lanes with AVX-512, 8 with AVX2, one scalar otherwise,
///   and TensorPrimitives (norms, softmax, dot products in attention) picks its width from
///   Vector512/Vector256.IsHardwareAccelerated, which can be off while Avx512F.IsSupported is on
///   (DOTNET_PreferredVectorBitWidth=256, the default on CPUs that throttle AVX-512). So the constants are keyed by
///   those flags; every key this machine could produce is committed (DOTNET_EnableAVX512=0,
///   DOTNET_PreferredVectorBitWidth=256, DOTNET_EnableAVX2=0 and DOTNET_EnableHWIntrinsic=0 select the others:
///   run the test project under each). A machine with another configuration fails, naming its key and checksum.
/// - Not the worker thread count: every output row of a matmul is one kernel call whose accumulation order does
///   not depend on which chunk it fell in (MatMul's Dot1, Dot4 and Dot4x4 share one order), attention heads are
///   independent, the absorbed attention's splits of a context start at fixed positions and merge in order, and routed experts' outputs are summed in expert order. Checked by running this test with
///   DOTNET_PROCESSOR_COUNT=1, 2, 3, 5 and 8: same checksums, so nothing is pinned.
/// - MathF.Sin/Cos (rotary angles) come from the C runtime's libm: the constants are glibc x64's.
/// </remarks>
public class LogitsChecksumTests
{
    private static readonly Dictionary<string, (string Tiny, string Small)> Expected = new()
    {
        ["avx512f=True,avx2+fma=True,v512=True,v256=True,v128=True"] =
            ("34147f9f3c313de679e0eafb32260135bceeeb0a83cd84afc73e79a9170b31b5", "a509810ffc4c70dad7adbeca9cd3ad2b7196a02f4df6a83e2f59df51ae90f712"),
        // DOTNET_PreferredVectorBitWidth=256
        ["avx512f=True,avx2+fma=True,v512=False,v256=True,v128=True"] =
            ("979f626749320f91bb6a1ff80c4841b2b00752124eea8f5a1e2a7c0abcc648aa", "2db3dcea6cc820bdff52e9d143e61cbdb318566c26d2db18fec8a320594aecf1"),
        // DOTNET_EnableAVX512=0
        ["avx512f=False,avx2+fma=True,v512=False,v256=True,v128=True"] =
            ("2b0bcce98c01cbf0d546b9b988c85f27d9b2faf57cfbcfb67d2fcd59d544ae37", "12d4268e771b3eb7dc79654d5e6a47eb405b6d20f4765c5cf826ed219a7015f7"),
        // DOTNET_EnableAVX2=0 (SSE only)
        ["avx512f=False,avx2+fma=False,v512=False,v256=False,v128=True"] =
            ("23c71204bb3bf4eed517445da5ddbaeda8bee40508bb182029da9f5d924b9781", "38fec058f54f4e1117ea5647563ec02ad4702bb2558a96008a9cfb8f4523295a"),
        // DOTNET_EnableHWIntrinsic=0
        ["avx512f=False,avx2+fma=False,v512=False,v256=False,v128=False"] =
            ("a56e8c3e6fccc7a81f62a9e4a824fd2a015806cb1efa387a433f008044af4aab", "1d2eafb8f9b441d17a8ae5548b3429b61f29e0a311c142a3fd4fe15f74b95fe4"),
    };

    /// <summary>The SIMD configuration the kernels and TensorPrimitives run with in this process.</summary>
    private static string SimdKey() =>
        $"avx512f={Avx512F.IsSupported},avx2+fma={Avx2.IsSupported && Fma.IsSupported},v512={Vector512.IsHardwareAccelerated},v256={Vector256.IsHardwareAccelerated},v128={Vector128.IsHardwareAccelerated}";

    [Fact]
    public void TinyPresetLogitsMatchTheCommittedChecksum() => Check("tiny", SyntheticPresets.Tiny, e => e.Tiny);

    [Fact]
    public void SmallPresetLogitsMatchTheCommittedChecksum() => Check("small", SyntheticPresets.Small, e => e.Small);

    private static void Check(string preset, ModelConfig shape, Func<(string Tiny, string Small), string> pick)
    {
        string key = SimdKey();
        string actual = Checksum(shape);
        Assert.True(Expected.TryGetValue(key, out var expected), $"no committed {preset} checksum for SIMD configuration {key}; this run gives {actual}");
        Assert.Equal(pick(expected), actual);
    }

    /// <summary>SHA-256 over the float bits of every logit, in order, of the runs below.</summary>
    private static string Checksum(ModelConfig shape)
    {
        ModelConfig config = SyntheticModel.ConfigFor(shape, DType.BF16);
        InMemoryTensorSource weights = SyntheticModel.CreateWeights(config, TinyModel.Seed, DType.BF16);
        Transformer model = Transformer.Load(config, weights);
        int vocab = config.VocabSize;
        // Spread over the vocabulary, the same ids whatever its size.
        int[] prompt = [0, 15, 27, 3, 999, 512, 64, 7, 1023, 200, 5, 300];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        // Naive prefill of the whole prompt (every row's logits) into the contiguous F32 cache, then greedy decode.
        var cache = new SequenceCache(config, 4);
        var logits = new float[prompt.Length * vocab];
        model.Prefill(prompt, cache, AttentionPath.Naive, logits);
        hash.AppendData(MemoryMarshal.AsBytes(logits.AsSpan()));
        Decode(model, [cache], logits.AsSpan((prompt.Length - 1) * vocab, vocab), hash);

        // Absorbed prefill in two chunks into the paged BF16 cache (rows cross block boundaries), last row only.
        var manager = new LatentCacheManager(config, new LatentCacheOptions { BlockSize = 4, BudgetBytes = 8L << 20, Format = LatentFormat.BF16 });
        PagedLatentCache paged = manager.TryStart(prompt, prompt.Length + 8, reusePrefix: false)!;
        var last = new float[vocab];
        model.Prefill(prompt.AsSpan(0, 5), paged, AttentionPath.Absorbed, last, lastRowOnly: true);
        hash.AppendData(MemoryMarshal.AsBytes(last.AsSpan()));
        model.Prefill(prompt.AsSpan(5), paged, AttentionPath.Absorbed, last, lastRowOnly: true);
        hash.AppendData(MemoryMarshal.AsBytes(last.AsSpan()));
        Decode(model, [paged], last, hash);

        // Both sequences decoding together in one batch.
        var second = new SequenceCache(config, 4, LatentFormat.BF16);
        model.Prefill(prompt.AsSpan(0, 7), second, AttentionPath.Absorbed, last, lastRowOnly: true);
        hash.AppendData(MemoryMarshal.AsBytes(last.AsSpan()));
        int[] tokens = [TopK.Argmax(logits.AsSpan(0, vocab)), TopK.Argmax(last)];
        var both = new float[2 * vocab];
        for (int step = 0; step < 3; step++)
        {
            model.Decode(tokens, [paged, second], both);
            hash.AppendData(MemoryMarshal.AsBytes(both.AsSpan()));
            for (int b = 0; b < 2; b++) tokens[b] = TopK.Argmax(both.AsSpan(b * vocab, vocab));
        }
        manager.Release(paged);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Four greedy steps of one sequence from the logits of its last prompt token.</summary>
    private static void Decode(Transformer model, ILatentCache[] caches, ReadOnlySpan<float> lastLogits, IncrementalHash hash)
    {
        var step = new float[model.Config.VocabSize];
        int[] token = [TopK.Argmax(lastLogits)];
        for (int i = 0; i < 4; i++)
        {
            model.Decode(token, caches, step);
            hash.AppendData(MemoryMarshal.AsBytes(step.AsSpan()));
            token[0] = TopK.Argmax(step);
        }
    }
}
