using Cluster.Protos.V1;
using Cluster.Transport.Services;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Transport.Tests;

/// <summary>
/// Pooled buffers end to end: concurrent streams of 1 MB frames, each with its own pattern, through handlers that
/// yield before they look at a frame. A buffer given back too early (by the binder, the reader or the marshaller)
/// would be rented by another stream's frame and overwritten while its handler still reads it.
/// </summary>
public class PooledExchangeTests : IAsyncLifetime
{
    private const int Size = 1 << 20, Streams = 4, FramesPerStream = 12;

    private GrpcServer _server = null!;
    private PeerChannel _peer = null!;

    public async Task InitializeAsync()
    {
        // The server checks each frame after awaiting, then sends the frame itself back (written before the next read releases it).
        var tensors = new TensorStreamService(async (frame, _) =>
        {
            await Task.Yield();
            await Task.Delay(1);
            if (!Matches(frame.Payload, Seed(frame.Layer, frame.BatchId)))
                throw new RpcException(new Status(StatusCode.DataLoss, $"stream {frame.Layer} frame {frame.BatchId}: payload changed while the handler held it"));
            return frame;
        });
        _server = await GrpcServer.StartAsync(new GrpcServerOptions(),
            b => b.Services.AddSingleton(tensors).AddSingleton<DispatchEcho>(),
            app =>
            {
                app.MapGrpcService<TensorStreamService>();
                app.MapGrpcService<DispatchEcho>();
            });
        _peer = PeerChannel.ForAddress(_server.Address);
    }

    public async Task DisposeAsync()
    {
        _peer.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task ConcurrentExchangeStreamsKeepEveryFrameIntactWhileItsHandlerHoldsIt()
    {
        var client = new TensorStream.TensorStreamClient(_peer.Invoker);
        await Task.WhenAll(Enumerable.Range(0, Streams).Select(s => Task.Run(async () =>
        {
            using var call = client.Exchange(deadline: TestData.In(120));
            using var replies = new PooledReader<TensorFrame>(call.ResponseStream, TensorFrameDecoder.Instance);
            var writer = Task.Run(async () =>
            {
                for (uint i = 0; i < FramesPerStream; i++)
                    await call.RequestStream.WriteAsync(new TensorFrame { Layer = (uint)s, BatchId = i, Payload = UnsafeByteOperations.UnsafeWrap(Pattern(Seed((uint)s, i))) });
                await call.RequestStream.CompleteAsync();
            });
            for (uint i = 0; i < FramesPerStream; i++)
            {
                Assert.True(await replies.MoveNext());
                var reply = replies.Current;
                await Task.Delay(1);
                Assert.Equal(((uint)s, i), (reply.Layer, reply.BatchId));
                Assert.True(Matches(reply.Payload, Seed((uint)s, i)), $"stream {s} reply {i}: payload changed while the reader held it");
            }
            Assert.False(await replies.MoveNext());
            await writer;
        })));
    }

    [Fact]
    public async Task ConcurrentDispatchStreamsDecodePooledOnBothSides()
    {
        var client = new ExpertService.ExpertServiceClient(_peer.Invoker);
        await Task.WhenAll(Enumerable.Range(0, Streams).Select(s => Task.Run(async () =>
        {
            using var call = client.Dispatch(deadline: TestData.In(120));
            using var combines = new PooledReader<CombineFrame>(call.ResponseStream, CombineFrameDecoder.Instance);
            var writer = Task.Run(async () =>
            {
                for (uint i = 0; i < FramesPerStream; i++)
                    await call.RequestStream.WriteAsync(new DispatchFrame
                    {
                        Layer = (uint)s, BatchId = i, Rows = 4, Hidden = 7168,
                        Activations = UnsafeByteOperations.UnsafeWrap(Pattern(Seed((uint)s, i))),
                        ExpertIds = ByteString.CopyFrom(1, 2, 3, 4),
                    });
                await call.RequestStream.CompleteAsync();
            });
            for (uint i = 0; i < FramesPerStream; i++)
            {
                Assert.True(await combines.MoveNext());
                var combine = combines.Current;
                await Task.Delay(1);
                Assert.Equal(((uint)s, i, 4u, ""), (combine.Layer, combine.BatchId, combine.Rows, combine.Error));
                Assert.True(Matches(combine.PartialSums, Seed((uint)s, i)), $"stream {s} combine {i}: partial sums changed while the reader held them");
            }
            Assert.False(await combines.MoveNext());
            await writer;
        })));
    }

    private static int Seed(uint stream, ulong frame) => (int)(stream * 1000 + frame);

    private static byte[] Pattern(int seed)
    {
        var bytes = new byte[Size];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(i * 31 + seed * 17 + (i >> 8));
        return bytes;
    }

    private static bool Matches(ByteString bytes, int seed)
    {
        var span = bytes.Span;
        if (span.Length != Size) return false;
        for (int i = 0; i < span.Length; i++)
            if (span[i] != (byte)(i * 31 + seed * 17 + (i >> 8))) return false;
        return true;
    }

    /// <summary>An expert service that reads dispatch frames pooled and answers each with its activations as the partial sums.</summary>
    [BindServiceMethod(typeof(DispatchEcho), nameof(BindService))]
    private sealed class DispatchEcho : ExpertService.ExpertServiceBase
    {
        public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => ExpertService.Descriptor;

        public static void BindService(ServiceBinderBase binder, ExpertService.ExpertServiceBase? service) =>
            ExpertService.BindService(new PooledMethodBinder(binder), service);

        public override async Task Dispatch(IAsyncStreamReader<DispatchFrame> requestStream, IServerStreamWriter<CombineFrame> responseStream, ServerCallContext context)
        {
            using var frames = new PooledReader<DispatchFrame>(requestStream, DispatchFrameDecoder.Instance);
            while (await frames.MoveNext(context.CancellationToken))
            {
                var frame = frames.Current;
                await Task.Delay(1);
                if (!Matches(frame.Activations, Seed(frame.Layer, frame.BatchId)))
                    throw new RpcException(new Status(StatusCode.DataLoss, $"stream {frame.Layer} frame {frame.BatchId}: activations changed while the handler held them"));
                await responseStream.WriteAsync(new CombineFrame { Layer = frame.Layer, BatchId = frame.BatchId, Rows = frame.Rows, PartialSums = frame.Activations });
            }
        }
    }
}
