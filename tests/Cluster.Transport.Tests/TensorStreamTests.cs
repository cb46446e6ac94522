using Cluster.Protos.V1;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.Transport.Tests;

/// <summary>The long-lived Exchange stream: megabyte frames both ways at once, without stalls, arriving intact.</summary>
public class TensorStreamTests(TestServer server) : IClassFixture<TestServer>
{
    [Fact]
    public async Task MegabyteFramesFlowBothWaysAtOnceAndArriveIntact()
    {
        const int frames = 48, size = 1024 * 1024;
        using var call = server.Tensors.Exchange(deadline: TestData.In(120));
        using var replies = new PooledReader<TensorFrame>(call.ResponseStream, TensorFrameDecoder.Instance);
        // The writer never waits for replies, so both directions are full at once: flow control must keep them moving.
        var writer = Task.Run(async () =>
        {
            for (int i = 0; i < frames; i++)
            {
                var payload = new byte[size];
                payload.AsSpan().Fill((byte)i);
                var frame = new TensorFrame { BatchId = (ulong)i, Layer = 61, Dtype = TensorDType.Bf16, Payload = UnsafeByteOperations.UnsafeWrap(payload) };
                frame.Shape.Add(512);
                frame.Shape.Add(1024);
                await call.RequestStream.WriteAsync(frame);
            }
            await call.RequestStream.CompleteAsync();
        });
        for (int i = 0; i < frames; i++)
        {
            Assert.True(await replies.MoveNext());
            var back = replies.Current;
            Assert.Equal(((ulong)i, 61u, TensorDType.Bf16), (back.BatchId, back.Layer, back.Dtype));
            Assert.Equal([512u, 1024u], back.Shape);
            Assert.Equal(size, back.Payload.Length);
            Assert.True(back.Payload.Span.IndexOfAnyExcept((byte)i) < 0, $"frame {i} payload corrupted");
        }
        Assert.False(await replies.MoveNext());
        await writer;
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }
}
