using System.Threading.Channels;
using Cluster.Engine.Cache;
using Cluster.Protos.V1;
using Cluster.Transport;

namespace Cluster.AttentionNode.Transfer;

/// <summary>
/// Cuts a layer's rows into KvSlice messages of at most <see cref="MaxSliceBytes"/> of data, each in a rented buffer
/// that the sender gives back with <see cref="Return"/> once the message is written.
/// </summary>
public static class KvSlices
{
    /// <summary>Keeps each message well under gRPC's default 4 MiB receive limit.</summary>
    public const int MaxSliceBytes = 1 << 20;

    /// <summary>Queues rows [start, start + count) of <paramref name="layer"/> as stored, in position order.</summary>
    public static void Send(PagedLatentCache cache, int layer, int start, int count, ChannelWriter<KvTransfer> output)
    {
        int bytesPerRow = cache.BytesPerRow;
        int rowsPerSlice = Math.Max(1, MaxSliceBytes / bytesPerRow);
        for (int at = start, end = start + count; at < end; at += rowsPerSlice)
        {
            int n = Math.Min(rowsPerSlice, end - at);
            byte[] data = System.Buffers.ArrayPool<byte>.Shared.Rent(n * bytesPerRow);
            cache.ReadRaw(layer, at, n, data.AsSpan(0, n * bytesPerRow));
            // Wrapped, not copied: nothing touches the buffer again until the sender returns it.
            var slice = new KvSlice { Layer = (uint)layer, Start = (uint)at, Count = (uint)n, Data = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(data.AsMemory(0, n * bytesPerRow)) };
            output.TryWrite(new KvTransfer { Slice = slice });
        }
    }

    /// <summary>Gives back a sent slice's buffer; the message must not be used afterwards.</summary>
    public static void Return(KvTransfer part) => PooledBytes.Return(part.Slice.Data);
}
