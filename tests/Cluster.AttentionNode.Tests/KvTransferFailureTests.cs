using Cluster.Protos.V1;
using Cluster.Transport;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.AttentionNode.Tests;

/// <summary>A KV transfer that breaks or carries the wrong thing fails its request cleanly, with the blocks freed on both sides.</summary>
public sealed class KvTransferFailureTests
{
    [Fact]
    public async Task ADecodeNodeGoingAwayMidTransferFailsItsRequestFreesThePrefillNodeAndOthersAreServed()
    {
        var (model, checkpoint) = TinyModel.Load();
        using var _ = checkpoint;
        await using var prefill = await TestNode.StartAsync("prefill-0", NodeRole.Prefill, o => o with { PrefillChunk = 64 });
        // No drain: the node goes away with the transfer in flight, as a node whose grace period ran out.
        await using var doomed = await TestNode.StartAsync("decode-0", NodeRole.Decode, o => o with { DrainTimeout = TimeSpan.Zero });
        await using var survivor = await TestNode.StartAsync("decode-1", NodeRole.Decode);
        // Its own channel, so that the caller outlives the node it called.
        using var caller = PeerChannel.ForAddress($"http://127.0.0.1:{doomed.Host.Port}");
        Task<List<TokenEvent>> request = Task.Run(async () =>
        {
            using var call = new Protos.V1.AttentionService.AttentionServiceClient(caller.Invoker).Generate(TestNode.Greedy(TinyModel.Prompt(90, 3000), 8, prefill.Endpoint), deadline: DateTime.UtcNow + TimeSpan.FromSeconds(60));
            var events = new List<TokenEvent>();
            while (await call.ResponseStream.MoveNext()) events.Add(call.ResponseStream.Current);
            return events;
        });
        await SchedulerTests.WaitUntil(() => doomed.Host.Counters.KvBytesReceived > 0 || request.IsCompleted);
        Assert.False(request.IsCompleted, "the transfer should still be in progress");
        await doomed.DisposeAsync();

        var e = await Assert.ThrowsAsync<RpcException>(() => request);
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Equal($"kv transfer from prefill node {prefill.Endpoint} failed: attention node decode-0 is shutting down", e.Status.Detail);
        await SchedulerTests.WaitUntil(() => prefill.Host.Caches.Stats().UsedBlocks == 0 && prefill.Host.Counters.Running == 0);
        Assert.True(prefill.Host.Counters.ComputedPromptTokens < 3000, "the prefill stopped when its caller went away");

        uint[] prompt = TinyModel.Prompt(91, 30);
        var served = await survivor.GenerateAsync(TestNode.Greedy(prompt, 6, prefill.Endpoint));
        SchedulerTests.AssertMatchesGreedy(TinyModel.Greedy(model, prompt, 6).Tokens, served, 6, model.Config.EosTokenIds);
    }

    private const int Prompt = 20;

    [Theory]
    [InlineData("checksum", "checksum mismatch: KvDone says 0000000000003039")]
    [InlineData("gap", "slice of layer 1 at 12: expected position 10 (a gap or overlap)")]
    [InlineData("dtype", "header: dtype 'f32', this node stores 'bf16'")]
    [InlineData("layers", "header: 4 layers, this node has 3")]
    [InlineData("size", "slice of layer 0 at 0: 95 bytes for 1 rows of 96")]
    [InlineData("missing", "KvDone with 0 of the prompt's 20 rows of layer 2")]
    [InlineData("past", "slice of layer 0 at 0: 21 rows run past the prompt of 20")]
    [InlineData("truncated", "the stream ended before KvDone")]
    public async Task AWrongTransferIsDataLossNamingTheProblemAndFreesTheDecodeNode(string fault, string detail)
    {
        await using var fake = await FakePrefillNode.StartAsync(request => Script(fault, request));
        await using var decode = await TestNode.StartAsync("decode-0", NodeRole.Decode);
        var e = await Assert.ThrowsAsync<RpcException>(() => decode.GenerateAsync(TestNode.Greedy(TinyModel.Prompt(92, Prompt), 4, fake.Endpoint)));
        Assert.Equal(StatusCode.DataLoss, e.StatusCode);
        Assert.StartsWith($"kv transfer from prefill node {fake.Endpoint}: {detail}", e.Status.Detail);
        Assert.Equal(0, decode.Host.Caches.Stats().UsedBlocks);
    }

    /// <summary>A well-formed transfer of the tiny model (3 layers, rows of 48 bf16 values) with one thing wrong.</summary>
    private static IEnumerable<KvTransfer> Script(string fault, PrefillRequest request)
    {
        const int layers = 3, bytesPerRow = 96;
        Assert.Equal(Prompt, request.Request.PromptTokenIds.Count);
        Assert.Equal("decode-0", request.DecodeNode);
        var header = new KvHeader { Layers = layers, RowSize = 48, Dtype = "bf16", PromptTokens = Prompt };
        if (fault == "dtype") header.Dtype = "f32";
        if (fault == "layers") header.Layers = 4;
        yield return new KvTransfer { Header = header };
        var checksum = new Transfer.KvChecksum();
        for (int l = 0; l < layers; l++)
        {
            if (fault == "missing" && l == 2) break;
            int[] starts = fault == "gap" && l == 1 ? [0, 12] : [0, 10];
            int[] counts = fault == "past" && l == 0 ? [21, 0] : [10, 10];
            for (int s = 0; s < 2 && counts[s] > 0; s++)
            {
                int count = counts[s], bytes = count * bytesPerRow;
                if (fault == "size" && l == 0 && s == 0) (count, bytes) = (1, 95);
                var data = new byte[bytes];
                new Random(l * 10 + s).NextBytes(data);
                checksum.Append(data);
                yield return new KvTransfer { Slice = new KvSlice { Layer = (uint)l, Start = (uint)starts[s], Count = (uint)count, Data = ByteString.CopyFrom(data) } };
            }
        }
        if (fault == "truncated") yield break;
        yield return new KvTransfer { Done = new KvDone { First = new TokenEvent { TokenId = 5, PromptTokens = Prompt }, Checksum = fault == "checksum" ? 12345UL : checksum.Value } };
    }
}
