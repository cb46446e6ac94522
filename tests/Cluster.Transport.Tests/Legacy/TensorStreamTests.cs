using System.Buffers;
using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Services;
using Google.Protobuf;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>The long-lived Exchange stream: big frames both ways at once without stalls, and no per-frame garbage beyond the frames.</summary>
public class TensorStreamTests(TestServer server) : IClassFixture<TestServer>
{
    [Fact]
    public async Task MegabyteFramesFlowBothWaysAtOnceAndArriveIntact()
    {
        const int frames = 48, size = 1024 * 1024;
        using var call = new TensorStreamClient(server.Channel).Exchange(new CallOptions { Timeout = TimeSpan.FromSeconds(60) });
        byte[] buffer = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            // The writer never waits for replies, so both directions are full at once: flow control must keep them moving.
            var writer = Task.Run(async () =>
            {
                for (int i = 0; i < frames; i++)
                {
                    buffer.AsSpan(0, size).Fill((byte)i);
                    var frame = new TensorFrame { BatchId = (ulong)i, Layer = 61, Dtype = TensorDType.Bf16, Payload = UnsafeByteOperations.UnsafeWrap(buffer.AsMemory(0, size)) };
                    frame.Shape.Add(512);
                    frame.Shape.Add(1024);
                    await call.RequestStream.WriteAsync(frame);
                }
                await call.RequestStream.CompleteAsync();
            });
            for (int i = 0; i < frames; i++)
            {
                Assert.True(await call.ResponseStream.MoveNext());
                var back = call.ResponseStream.Current;
                Assert.Equal(((ulong)i, 61u, TensorDType.Bf16), (back.BatchId, back.Layer, back.Dtype));
                Assert.Equal([512u, 1024u], back.Shape);
                Assert.Equal(size, back.Payload.Length);
                Assert.True(back.Payload.Span.IndexOfAnyExcept((byte)i) < 0, $"frame {i} payload corrupted");
            }
            Assert.False(await call.ResponseStream.MoveNext());
            await writer;
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }
}

/// <summary>Counts the process's allocations, so it runs alone: no other test may allocate meanwhile.</summary>
[CollectionDefinition(nameof(AllocationTests), DisableParallelization = true)]
public sealed class AllocationCollection;

[Collection(nameof(AllocationTests))]
public class AllocationTests : IAsyncLifetime
{
    private readonly TestServer _server = new();

    public Task InitializeAsync() => _server.InitializeAsync();
    public Task DisposeAsync() => _server.DisposeAsync();

    [Fact]
    public async Task SteadyStateAllocationIsAboutTheFramesThemselves()
    {
        const int size = 1024, n = 2000;
        var frame = new TensorFrame { BatchId = 1, Payload = UnsafeByteOperations.UnsafeWrap(new byte[size]) };
        using var call = new TensorStreamClient(_server.Channel).Exchange(new CallOptions { Timeout = TimeSpan.FromSeconds(60) });
        for (int i = 0; i < 200; i++) { await call.RequestStream.WriteAsync(frame); Assert.True(await call.ResponseStream.MoveNext()); }
        // The count is process-wide: timers and connections that earlier tests left closing allocate too, so the
        // quietest of three batches is the one that speaks for the stream.
        double perRoundTrip = double.MaxValue;
        for (int batch = 0; batch < 3; batch++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < n; i++) { await call.RequestStream.WriteAsync(frame); Assert.True(await call.ResponseStream.MoveNext()); }
            perRoundTrip = Math.Min(perRoundTrip, (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)n);
        }
        // Two parsed frames per round trip (server and client), each an object, a ByteString and the payload copy;
        // the rest is the HTTP/2 stacks' own bookkeeping. Anything per-message in our layers would show up here.
        double frames = 2 * (size + 200);
        Assert.True(perRoundTrip < frames + 1500, $"{perRoundTrip:F0} bytes allocated per round trip");
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }
}
