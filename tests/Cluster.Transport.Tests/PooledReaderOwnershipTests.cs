using System.Buffers;
using System.Runtime.InteropServices;
using Cluster.Protos.V1;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.Transport.Tests;

/// <summary>
/// The ownership rule of pooled messages: PooledReader's Current keeps its buffers until the next MoveNext or
/// Dispose, then gives them back (its bytes fields read as empty). ArrayPool.Shared hands the array a thread gave
/// back last to that thread's next rent of the same size, so decoding more frames on the same thread right after
/// a release is what would overwrite a frame released too early; the control proves the check sees that.
/// </summary>
public class PooledReaderOwnershipTests
{
    private const int Size = 1 << 20;

    [Fact]
    public async Task CurrentKeepsItsPayloadUntilTheNextMoveNext()
    {
        var reader = new FakeStream(Wire(0), Wire(1));
        using var frames = new PooledReader<TensorFrame>(reader, TensorFrameDecoder.Instance);
        Assert.True(await frames.MoveNext(CancellationToken.None));
        var a = frames.Current;
        byte[] snapshot = a.Payload.ToByteArray();
        byte[] aArray = Array(a.Payload);

        // Same thread, same size: had A been released, the first of these would rent A's array and overwrite it.
        for (int i = 0; i < 50; i++)
        {
            var other = TensorFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(Wire(100 + i)));
            Assert.NotSame(aArray, Array(other.Payload));
            TensorFrameDecoder.Instance.Release(other);
        }
        Assert.True(a.Payload.Span.SequenceEqual(snapshot), "frame A's payload changed while it was still Current");
        Assert.True(Matches(a, 0));

        Assert.True(await frames.MoveNext(CancellationToken.None));
        Assert.True(a.Payload.IsEmpty, "the next MoveNext must give A's buffer back");
        Assert.True(Matches(frames.Current, 1));
        var b = frames.Current;
        frames.Dispose();
        Assert.True(b.Payload.IsEmpty, "Dispose must give the current frame's buffer back");
    }

    [Fact]
    public void ControlAReleasedFramesArrayIsHandedOutAndOverwritten()
    {
        var a = TensorFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(Wire(0)));
        byte[] aArray = Array(a.Payload);
        // What a release too early looks like: A's owner still holds the array, the pool thinks it is free.
        TensorFrameDecoder.Instance.Release(a);
        var other = TensorFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(Wire(7)));
        Assert.Same(aArray, Array(other.Payload));
        Assert.False(aArray.AsSpan(0, Size).SequenceEqual(Pattern(0)), "the churn did not overwrite the released array: the check above could not fail");
        TensorFrameDecoder.Instance.Release(other);
    }

    private static byte[] Pattern(int seed)
    {
        var bytes = new byte[Size];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(i * 31 + seed * 17 + (i >> 8));
        return bytes;
    }

    private static byte[] Wire(int seed) => new TensorFrame { BatchId = (ulong)seed, Payload = UnsafeByteOperations.UnsafeWrap(Pattern(seed)) }.ToByteArray();

    private static bool Matches(TensorFrame frame, int seed) => frame.Payload.Span.SequenceEqual(Pattern(seed)) && frame.BatchId == (ulong)seed;

    private static byte[] Array(ByteString bytes) =>
        MemoryMarshal.TryGetArray(bytes.Memory, out var segment) ? segment.Array! : throw new InvalidOperationException("not array-backed");

    /// <summary>A stream reader as grpc-dotnet's is for a pooled method: each MoveNext decodes the next message from its bytes.</summary>
    private sealed class FakeStream(params byte[][] messages) : IAsyncStreamReader<TensorFrame>
    {
        private int _next;

        public TensorFrame Current { get; private set; } = null!;

        public Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (_next == messages.Length) return Task.FromResult(false);
            Current = TensorFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(messages[_next++]));
            return Task.FromResult(true);
        }
    }
}
