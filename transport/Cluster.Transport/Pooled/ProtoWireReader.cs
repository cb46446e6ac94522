using System.Buffers;

namespace Cluster.Transport;

/// <summary>
/// The protobuf wire format read field by field over a <see cref="ReadOnlySequence{T}"/>, for hand-written
/// <see cref="IPooledDecoder{T}"/>s. Malformed input throws <see cref="InvalidDataException"/>, which
/// <see cref="PooledMarshaller"/> turns into the call's INTERNAL status.
/// </summary>
public ref struct ProtoWireReader(ReadOnlySequence<byte> payload)
{
    public const int Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5;

    private SequenceReader<byte> _reader = new(payload);

    public readonly bool End => _reader.End;

    /// <summary>The next field's number and wire type; false at the end of the message.</summary>
    public bool TryReadTag(out int field, out int wireType)
    {
        field = wireType = 0;
        if (_reader.End) return false;
        ulong tag = ReadVarint();
        field = (int)(tag >> 3);
        wireType = (int)(tag & 7);
        if (field <= 0 || tag >> 3 > int.MaxValue) throw Malformed($"invalid field number {tag >> 3}");
        return true;
    }

    public ulong ReadVarint()
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (!_reader.TryRead(out byte b)) throw Truncated();
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw Malformed("malformed varint (more than 10 bytes)");
    }

    /// <summary>A length-delimited field's bytes, still in the message's buffer.</summary>
    public ReadOnlySequence<byte> ReadLengthDelimited()
    {
        ulong length = ReadVarint();
        if (length > (ulong)_reader.Remaining) throw Truncated();
        var bytes = _reader.UnreadSequence.Slice(0, (long)length);
        _reader.Advance((long)length);
        return bytes;
    }

    /// <summary>Steps over a field this decoder does not know, as proto3 parsers do.</summary>
    public void Skip(int wireType)
    {
        long size = wireType switch
        {
            Varint => 0,
            Fixed64 => 8,
            LengthDelimited => -1,
            Fixed32 => 4,
            _ => throw Malformed($"unsupported wire type {wireType}"),
        };
        if (wireType == Varint) ReadVarint();
        else if (size < 0) ReadLengthDelimited();
        else if (_reader.Remaining < size) throw Truncated();
        else _reader.Advance(size);
    }

    /// <summary>A repeated uint32 field's values, packed or one per tag; appended to <paramref name="values"/>.</summary>
    public void ReadUInt32s(int wireType, ICollection<uint> values)
    {
        if (wireType == Varint)
        {
            values.Add((uint)ReadVarint());
            return;
        }
        if (wireType != LengthDelimited)
        {
            Skip(wireType);
            return;
        }
        var packed = new ProtoWireReader(ReadLengthDelimited());
        while (!packed.End) values.Add((uint)packed.ReadVarint());
    }

    /// <summary>
    /// A varint field's value; false (the field skipped) when it came with another wire type, which generated
    /// parsers also treat as an unknown field.
    /// </summary>
    public bool TryReadVarint(int wireType, out ulong value)
    {
        value = 0;
        if (wireType != Varint)
        {
            Skip(wireType);
            return false;
        }
        value = ReadVarint();
        return true;
    }

    /// <summary>A length-delimited field's bytes; false (the field skipped) when it came with another wire type.</summary>
    public bool TryReadLengthDelimited(int wireType, out ReadOnlySequence<byte> bytes)
    {
        bytes = default;
        if (wireType != LengthDelimited)
        {
            Skip(wireType);
            return false;
        }
        bytes = ReadLengthDelimited();
        return true;
    }

    /// <summary>A string field's text, decoded as the generated parser decodes it (invalid bytes become U+FFFD).</summary>
    public static string Utf8(in ReadOnlySequence<byte> bytes) => System.Text.EncodingExtensions.GetString(System.Text.Encoding.UTF8, bytes);

    private static InvalidDataException Truncated() => Malformed("the message ends inside a field");

    private static InvalidDataException Malformed(string what) => new(what);
}
