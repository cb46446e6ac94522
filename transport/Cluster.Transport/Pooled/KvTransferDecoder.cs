using System.Buffers;
using Cluster.Protos.V1;
using Google.Protobuf;

namespace Cluster.Transport;

/// <summary>
/// KvTransfer with each slice's rows in a pooled buffer: a long prompt's latent cache arrives as many slices of up to
/// 1 MiB, each of which the generated parser would copy into a fresh large-object array. The header and KvDone are
/// small and go through the generated parsers.
/// </summary>
public sealed class KvTransferDecoder : IPooledDecoder<KvTransfer>
{
    public static readonly KvTransferDecoder Instance = new();

    public KvTransfer Decode(in ReadOnlySequence<byte> payload)
    {
        var message = new KvTransfer();
        var wire = new ProtoWireReader(payload);
        try
        {
            while (wire.TryReadTag(out int field, out int type))
            {
                if (field is < 1 or > 3)
                {
                    wire.Skip(type);
                    continue;
                }
                if (!wire.TryReadLengthDelimited(type, out ReadOnlySequence<byte> part)) continue;
                // A oneof set twice on the wire: the last one wins, and a slice it replaces gives its buffer back.
                Release(message);
                try
                {
                    switch (field)
                    {
                        case 1: message.Header = KvHeader.Parser.ParseFrom(part); break;
                        case 2: message.Slice = DecodeSlice(part); break;
                        case 3: message.Done = KvDone.Parser.ParseFrom(part); break;
                    }
                }
                catch (InvalidProtocolBufferException e) { throw new InvalidDataException(e.Message, e); }
            }
        }
        catch
        {
            Release(message);
            throw;
        }
        return message;
    }

    public void Release(KvTransfer message)
    {
        if (message.PartCase != KvTransfer.PartOneofCase.Slice) return;
        PooledBytes.Return(message.Slice.Data);
        message.Slice.Data = ByteString.Empty;
    }

    private static KvSlice DecodeSlice(in ReadOnlySequence<byte> bytes)
    {
        var slice = new KvSlice();
        var wire = new ProtoWireReader(bytes);
        try
        {
            while (wire.TryReadTag(out int field, out int type))
            {
                ulong v;
                switch (field)
                {
                    case 1: if (wire.TryReadVarint(type, out v)) slice.Layer = (uint)v; break;
                    case 2: if (wire.TryReadVarint(type, out v)) slice.Start = (uint)v; break;
                    case 3: if (wire.TryReadVarint(type, out v)) slice.Count = (uint)v; break;
                    case 4:
                        if (!wire.TryReadLengthDelimited(type, out ReadOnlySequence<byte> data)) break;
                        PooledBytes.Return(slice.Data);
                        slice.Data = PooledBytes.Rent(data);
                        break;
                    default: wire.Skip(type); break;
                }
            }
        }
        catch
        {
            PooledBytes.Return(slice.Data);
            throw;
        }
        return slice;
    }
}
