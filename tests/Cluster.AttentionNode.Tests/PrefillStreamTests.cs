using System.Threading.Channels;
using Cluster.AttentionNode.Transfer;
using Cluster.Engine.Cache;
using Cluster.Protos.V1;
using Cluster.Transport;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.AttentionNode.Tests;

/// <summary>What a Prefill call streams: the header, the reused prefix, then each chunk layer by layer, then the first token and checksum.</summary>
public sealed class PrefillStreamTests
{
    [Fact]
    public async Task ThePrefixComesFirstThenEachChunkLayerByLayer()
    {
        await using var node = await TestNode.StartAsync("prefill-0", NodeRole.Prefill, o => o with { KvBlockSize = 16, PrefillChunk = 32 });
        uint[] first = TinyModel.Prompt(100, 40), second = [.. first, .. TinyModel.Prompt(101, 61)[1..]];
        await ReadAsync(node, first);
        var parts = await ReadAsync(node, second);

        KvHeader header = parts[0].Header;
        Assert.Equal((3u, 48u, "bf16", 100u, 32u), (header.Layers, header.RowSize, header.Dtype, header.PromptTokens, header.CachedPromptTokens));
        var slices = parts.Skip(1).SkipLast(1).Select(p => (p.Slice.Layer, p.Slice.Start, p.Slice.Count)).ToArray();
        (uint, uint, uint)[] expected =
        [
            (0, 0, 32), (1, 0, 32), (2, 0, 32),
            (0, 32, 32), (1, 32, 32), (2, 32, 32),
            (0, 64, 32), (1, 64, 32), (2, 64, 32),
            (0, 96, 4), (1, 96, 4), (2, 96, 4),
        ];
        Assert.Equal(expected, slices);

        KvDone done = parts[^1].Done;
        Assert.Equal((100u, 32u), (done.First.PromptTokens, done.First.CachedPromptTokens));
        var checksum = new KvChecksum();
        foreach (KvTransfer p in parts.Skip(1).SkipLast(1)) checksum.Append(p.Slice.Data.Span);
        Assert.Equal(checksum.Value, done.Checksum);
        Assert.Equal(0, node.Host.Caches.Stats().UsedBlocks);
    }

    [Fact]
    public void RowsAreCutIntoSlicesOfAtMostOneMebibyte()
    {
        var caches = new LatentCacheManager(TinyModel.Config, new LatentCacheOptions { BlockSize = 64, BudgetBytes = 64L << 20 });
        PagedLatentCache cache = caches.TryStart([], 12000, reusePrefix: false)!;
        cache.Reserve(12000);
        var output = Channel.CreateUnbounded<KvTransfer>();
        KvSlices.Send(cache, 1, 0, 12000, output.Writer);
        int perSlice = KvSlices.MaxSliceBytes / cache.BytesPerRow;
        output.Writer.Complete();
        var slices = new List<KvTransfer>();
        while (output.Reader.TryRead(out var s)) slices.Add(s);
        Assert.Equal(2, slices.Count);
        var (a, b) = (slices[0], slices[1]);
        Assert.Equal((1u, 0u, (uint)perSlice, perSlice * cache.BytesPerRow), (a.Slice.Layer, a.Slice.Start, a.Slice.Count, a.Slice.Data.Length));
        Assert.Equal((1u, (uint)perSlice, (uint)(12000 - perSlice)), (b.Slice.Layer, b.Slice.Start, b.Slice.Count));
        Assert.True(a.Slice.Data.Length <= KvSlices.MaxSliceBytes);
        caches.Release(cache);
    }

    private static async Task<List<KvTransfer>> ReadAsync(TestNode node, uint[] prompt)
    {
        using var call = new Protos.V1.AttentionService.AttentionServiceClient(node.Channel.Invoker).Prefill(new PrefillRequest { Request = TestNode.Greedy(prompt, 4), DecodeNode = "test" }, deadline: DateTime.UtcNow + TimeSpan.FromSeconds(60));
        var parts = new List<KvTransfer>();
        // A slice read from the stream is valid until the next read (pooled buffer): keep copies.
        while (await call.ResponseStream.MoveNext()) parts.Add(KvTransfer.Parser.ParseFrom(call.ResponseStream.Current.ToByteArray()));
        return parts;
    }
}
