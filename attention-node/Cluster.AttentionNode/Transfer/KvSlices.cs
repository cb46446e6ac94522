using System.Threading.Channels;
using Cluster.Engine.Cache;
using Cluster.Protos.V1;
using Google.Protobuf;

namespace Cluster.AttentionNode.Transfer;

/// <summary>Cuts a layer's rows into KvSlice messages of at most <see cref="MaxSliceBytes"/> of data.</summary>
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
            var data = new byte[n * bytesPerRow];
            cache.ReadRaw(layer, at, n, data);
            // The array is never touched again, so the message may wrap it instead of copying.
            output.TryWrite(new KvTransfer { Slice = new KvSlice { Layer = (uint)layer, Start = (uint)at, Count = (uint)n, Data = UnsafeByteOperations.UnsafeWrap(data) } });
        }
    }
}
