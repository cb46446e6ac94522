using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using Google.Protobuf;

namespace Cluster.Transport.Legacy;

/// <summary>
/// The length-prefixed message: a compressed flag byte, a big-endian uint32 length, then the (possibly
/// gzip-compressed) protobuf bytes.
/// </summary>
public static class MessageFraming
{
    public const int HeaderSize = 5;

    /// <summary>Frames a message into the writer; uncompressed messages serialize straight into its buffer.</summary>
    public static void Write(IBufferWriter<byte> writer, IMessage message, int? maxSendSize, bool gzip)
    {
        int size = message.CalculateSize();
        CheckSendSize(size, maxSendSize);
        if (!gzip)
        {
            // One span for the whole frame: a pipe writer then takes one lock and one buffer, where serializing
            // through IBufferWriter would fetch a 4 KB block at a time.
            Span<byte> frame = writer.GetSpan(HeaderSize + size);
            frame[0] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(frame[1..], (uint)size);
            message.WriteTo(frame.Slice(HeaderSize, size));
            writer.Advance(HeaderSize + size);
            return;
        }
        // Compression is off the hot path: the message goes through a temporary buffer to learn its compressed length.
        byte[] raw = ArrayPool<byte>.Shared.Rent(Math.Max(size, 1));
        try
        {
            message.WriteTo(raw.AsSpan(0, size));
            var compressed = new MemoryStream();
            using (var gz = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(raw, 0, size);
            WriteHeader(writer, compressed: true, (int)compressed.Length);
            compressed.GetBuffer().AsSpan(0, (int)compressed.Length).CopyTo(writer.GetSpan((int)compressed.Length));
            writer.Advance((int)compressed.Length);
        }
        finally { ArrayPool<byte>.Shared.Return(raw); }
    }

    internal static void CheckSendSize(int size, int? maxSendSize)
    {
        if (maxSendSize is { } max && size > max)
            throw new RpcException(StatusCode.ResourceExhausted, $"Sending message larger than max ({size} vs. {max})");
    }

    private static void WriteHeader(IBufferWriter<byte> writer, bool compressed, int length)
    {
        Span<byte> header = writer.GetSpan(HeaderSize);
        header[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(header[1..], (uint)length);
        writer.Advance(HeaderSize);
    }

    /// <summary>
    /// Takes one whole message from the front of the buffer, or returns false when more bytes are needed.
    /// A length over the limit fails at once, before the body is buffered.
    /// </summary>
    public static bool TryRead<T>(ref ReadOnlySequence<byte> buffer, MessageParser<T> parser, int maxReceiveSize,
        string? encoding, out T? message, IPooledDecoder<T>? decoder = null) where T : class, IMessage<T>
    {
        message = null;
        if (buffer.Length < HeaderSize) return false;
        Span<byte> header = stackalloc byte[HeaderSize];
        buffer.Slice(0, HeaderSize).CopyTo(header);
        byte flag = header[0];
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (flag > 1)
            throw new RpcException(StatusCode.Internal, $"Invalid compressed flag {flag} in message header");
        if (length > (uint)maxReceiveSize)
            throw new RpcException(StatusCode.ResourceExhausted, $"Received message larger than max ({length} vs. {maxReceiveSize})");
        if (buffer.Length < HeaderSize + length) return false;
        var payload = buffer.Slice(HeaderSize, length);
        if (flag == 1)
        {
            if (encoding is null or GrpcProtocol.Identity)
                throw new RpcException(StatusCode.Internal, "Message has the compressed flag set but the stream has no grpc-encoding");
            message = ParseGzip(payload, parser, decoder, maxReceiveSize);
        }
        else
        {
            message = Parse(payload, parser, decoder);
        }
        buffer = buffer.Slice(payload.End);
        return true;
    }

    private static T Parse<T>(ReadOnlySequence<byte> payload, MessageParser<T> parser, IPooledDecoder<T>? decoder) where T : class, IMessage<T>
    {
        try { return decoder is null ? parser.ParseFrom(payload) : decoder.Decode(payload); }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidDataException) { throw new RpcException(StatusCode.Internal, "Failed to parse message: " + e.Message); }
    }

    private static T ParseGzip<T>(ReadOnlySequence<byte> payload, MessageParser<T> parser, IPooledDecoder<T>? decoder, int maxReceiveSize) where T : class, IMessage<T>
    {
        using var output = new PooledBufferWriter();
        try
        {
            using var gz = new GZipStream(new MemoryStream(payload.ToArray()), CompressionMode.Decompress);
            while (true)
            {
                int n = gz.Read(output.GetSpan(64 * 1024));
                if (n == 0) break;
                output.Advance(n);
                if (output.WrittenCount > maxReceiveSize)
                    throw new RpcException(StatusCode.ResourceExhausted, $"Received message larger than max after decompression (over {maxReceiveSize})");
            }
        }
        catch (InvalidDataException e) { throw new RpcException(StatusCode.Internal, "Failed to decompress gzip message: " + e.Message); }
        return Parse(new ReadOnlySequence<byte>(output.WrittenMemory), parser, decoder);
    }
}
