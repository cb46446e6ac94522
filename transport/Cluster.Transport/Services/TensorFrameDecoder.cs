using System.Buffers;
using Cluster.Protos.V1;

namespace Cluster.Transport.Services;

/// <summary>TensorFrame with payload and routing in pooled buffers: what Exchange streams read.</summary>
public sealed class TensorFrameDecoder : IPooledDecoder<TensorFrame>
{
    public static readonly TensorFrameDecoder Instance = new();

    public TensorFrame Decode(in ReadOnlySequence<byte> payload)
    {
        var frame = new TensorFrame();
        var wire = new ProtoWireReader(payload);
        try
        {
            while (wire.TryReadTag(out int field, out int type))
            {
                ulong v;
                ReadOnlySequence<byte> bytes;
                switch (field)
                {
                    case 1: if (wire.TryReadVarint(type, out v)) frame.BatchId = v; break;
                    case 2: if (wire.TryReadVarint(type, out v)) frame.Layer = (uint)v; break;
                    case 3: wire.ReadUInt32s(type, frame.Shape); break;
                    case 4: if (wire.TryReadVarint(type, out v)) frame.Dtype = (TensorDType)(int)v; break;
                    case 5: if (wire.TryReadLengthDelimited(type, out bytes)) Replace(frame, PooledBytes.Rent(bytes), payloadField: true); break;
                    case 6: if (wire.TryReadLengthDelimited(type, out bytes)) Replace(frame, PooledBytes.Rent(bytes), payloadField: false); break;
                    default: wire.Skip(type); break;
                }
            }
        }
        catch
        {
            Release(frame);
            throw;
        }
        return frame;
    }

    public void Release(TensorFrame message)
    {
        PooledBytes.Return(message.Payload);
        PooledBytes.Return(message.Routing);
        message.Payload = Google.Protobuf.ByteString.Empty;
        message.Routing = Google.Protobuf.ByteString.Empty;
    }

    /// <summary>A field repeated on the wire: the last value wins, as in protobuf; the earlier buffer goes back.</summary>
    private static void Replace(TensorFrame frame, Google.Protobuf.ByteString bytes, bool payloadField)
    {
        if (payloadField)
        {
            PooledBytes.Return(frame.Payload);
            frame.Payload = bytes;
        }
        else
        {
            PooledBytes.Return(frame.Routing);
            frame.Routing = bytes;
        }
    }
}
