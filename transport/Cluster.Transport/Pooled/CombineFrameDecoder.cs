using System.Buffers;
using Cluster.Protos.V1;
using Google.Protobuf;

namespace Cluster.Transport;

/// <summary>
/// CombineFrame with its partial sums in a pooled buffer: the reply to a dispatch frame is as large as the frame's
/// activations (rows x hidden), so the generated parser would allocate a large-object array per frame per layer.
/// </summary>
public sealed class CombineFrameDecoder : IPooledDecoder<CombineFrame>
{
    public static readonly CombineFrameDecoder Instance = new();

    public CombineFrame Decode(in ReadOnlySequence<byte> payload)
    {
        var frame = new CombineFrame();
        var wire = new ProtoWireReader(payload);
        try
        {
            while (wire.TryReadTag(out int field, out int type))
            {
                ReadOnlySequence<byte> bytes;
                ulong value;
                switch (field)
                {
                    case 1: if (wire.TryReadVarint(type, out value)) frame.BatchId = value; break;
                    case 2: if (wire.TryReadVarint(type, out value)) frame.Layer = (uint)value; break;
                    case 3: if (wire.TryReadVarint(type, out value)) frame.Rows = (uint)value; break;
                    case 4: if (wire.TryReadVarint(type, out value)) frame.Dtype = (TensorDType)(int)value; break;
                    case 5:
                        if (wire.TryReadLengthDelimited(type, out bytes))
                        {
                            // A field repeated on the wire: the last one wins, and the one it replaces goes back.
                            PooledBytes.Return(frame.PartialSums);
                            frame.PartialSums = PooledBytes.Rent(bytes);
                        }
                        break;
                    case 6: if (wire.TryReadLengthDelimited(type, out bytes)) frame.Error = ProtoWireReader.Utf8(bytes); break;
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

    public void Release(CombineFrame message)
    {
        PooledBytes.Return(message.PartialSums);
        message.PartialSums = ByteString.Empty;
    }
}
