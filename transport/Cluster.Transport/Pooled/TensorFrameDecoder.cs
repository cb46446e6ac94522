using System.Buffers;
using Cluster.Protos.V1;

namespace Cluster.Transport;

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
                    case 5 or 6: if (wire.TryReadLengthDelimited(type, out bytes)) SetBytes(frame, field, PooledBytes.Rent(bytes)); break;
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
        SetBytes(message, 5, Google.Protobuf.ByteString.Empty);
        SetBytes(message, 6, Google.Protobuf.ByteString.Empty);
    }

    /// <summary>Sets payload (5) or routing (6), giving back the buffer it held (a field repeated on the wire: the last one wins).</summary>
    private static void SetBytes(TensorFrame frame, int field, Google.Protobuf.ByteString bytes)
    {
        if (field == 5)
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
