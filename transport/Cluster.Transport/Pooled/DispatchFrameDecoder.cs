using System.Buffers;
using Cluster.Protos.V1;
using Google.Protobuf;

namespace Cluster.Transport;

/// <summary>
/// DispatchFrame with its byte fields in pooled buffers: a frame of a few hundred rows of a 7168-wide model is past
/// the large-object threshold, so the generated parser would allocate on the large-object heap for every frame of
/// every MoE layer. The expert service is done with a frame before it reads the next one.
/// </summary>
public sealed class DispatchFrameDecoder : IPooledDecoder<DispatchFrame>
{
    public static readonly DispatchFrameDecoder Instance = new();

    public DispatchFrame Decode(in ReadOnlySequence<byte> payload)
    {
        var frame = new DispatchFrame();
        var wire = new ProtoWireReader(payload);
        try
        {
            while (wire.TryReadTag(out int field, out int type))
            {
                if (field is >= 6 and <= 10 and not 8)
                {
                    if (wire.TryReadLengthDelimited(type, out ReadOnlySequence<byte> bytes)) SetBytes(frame, field, PooledBytes.Rent(bytes));
                    continue;
                }
                if (field > 11)
                {
                    wire.Skip(type);
                    continue;
                }
                if (!wire.TryReadVarint(type, out ulong value)) continue;
                switch (field)
                {
                    case 1: frame.BatchId = value; break;
                    case 2: frame.Layer = (uint)value; break;
                    case 3: frame.Rows = (uint)value; break;
                    case 4: frame.Hidden = (uint)value; break;
                    case 5: frame.Dtype = (TensorDType)(int)value; break;
                    case 8: frame.TopK = (uint)value; break;
                    case 11: frame.PlanVersion = value; break;
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

    public void Release(DispatchFrame message)
    {
        for (int field = 6; field <= 10; field++)
            if (field != 8) SetBytes(message, field, ByteString.Empty);
    }

    /// <summary>Sets a bytes field, giving back the buffer it held (a field repeated on the wire: the last one wins).</summary>
    private static void SetBytes(DispatchFrame frame, int field, ByteString bytes)
    {
        switch (field)
        {
            case 6: PooledBytes.Return(frame.Activations); frame.Activations = bytes; break;
            case 7: PooledBytes.Return(frame.Scales); frame.Scales = bytes; break;
            case 9: PooledBytes.Return(frame.ExpertIds); frame.ExpertIds = bytes; break;
            case 10: PooledBytes.Return(frame.Weights); frame.Weights = bytes; break;
        }
    }
}
