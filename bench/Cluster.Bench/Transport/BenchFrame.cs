using System.Buffers;
using Cluster.Protos.V1;
using Google.Protobuf;

namespace Cluster.Bench.Transport;

/// <summary>
/// The TensorFrame a bidi measurement sends again and again: its payload wraps one pooled buffer without a copy
/// (<see cref="UnsafeByteOperations.UnsafeWrap(ReadOnlyMemory{byte})"/>), so the hot loop allocates nothing for it.
/// </summary>
public sealed class BenchFrame : IDisposable
{
    private byte[]? _buffer;

    public BenchFrame(int size)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(size);
        _buffer.AsSpan(0, size).Fill(7);
        Frame = new TensorFrame { BatchId = 1, Layer = 1, Dtype = TensorDType.Fp8E4M3, Payload = UnsafeByteOperations.UnsafeWrap(_buffer.AsMemory(0, size)) };
        Frame.Shape.Add((uint)size);
    }

    public TensorFrame Frame { get; }

    public void Dispose()
    {
        var b = Interlocked.Exchange(ref _buffer, null);
        if (b is not null) ArrayPool<byte>.Shared.Return(b);
    }
}
