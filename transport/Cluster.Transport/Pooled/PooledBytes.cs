using System.Buffers;
using System.Runtime.InteropServices;
using Google.Protobuf;

namespace Cluster.Transport;

/// <summary>Bytes fields backed by arrays rented from <see cref="ArrayPool{T}.Shared"/>, for <see cref="IPooledDecoder{T}"/>s.</summary>
public static class PooledBytes
{
    /// <summary>Copies <paramref name="bytes"/> into a rented array and wraps it without a further copy.</summary>
    public static ByteString Rent(in ReadOnlySequence<byte> bytes)
    {
        if (bytes.IsEmpty) return ByteString.Empty;
        byte[] array = ArrayPool<byte>.Shared.Rent((int)bytes.Length);
        bytes.CopyTo(array);
        return UnsafeByteOperations.UnsafeWrap(array.AsMemory(0, (int)bytes.Length));
    }

    /// <summary>Gives back an array <see cref="Rent"/> handed out; empty strings own none.</summary>
    public static void Return(ByteString bytes)
    {
        if (bytes.IsEmpty) return;
        if (!MemoryMarshal.TryGetArray(bytes.Memory, out ArraySegment<byte> segment) || segment.Array is null)
            throw new InvalidOperationException("the bytes were not rented by PooledBytes");
        ArrayPool<byte>.Shared.Return(segment.Array);
    }
}
