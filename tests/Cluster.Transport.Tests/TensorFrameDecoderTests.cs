using System.Buffers;
using Cluster.Protos.V1;
using Cluster.Transport;
using Google.Protobuf;

namespace Cluster.Transport.Tests;

/// <summary>The hand-written pooled TensorFrame decoder reads exactly what Google.Protobuf's generated parser reads.</summary>
public class TensorFrameDecoderTests
{
    [Fact]
    public void RandomFramesDecodeAsTheGeneratedParserDoes()
    {
        var random = new Random(7);
        for (int i = 0; i < 300; i++)
        {
            var frame = new TensorFrame
            {
                BatchId = (ulong)random.NextInt64() * (ulong)random.Next(0, 3),
                Layer = (uint)random.Next(0, 200),
                Dtype = (TensorDType)random.Next(0, 6),
                Payload = ByteString.CopyFrom(Bytes(random, random.Next(0, 5) == 0 ? 0 : random.Next(1, 70_000))),
                Routing = ByteString.CopyFrom(Bytes(random, random.Next(0, 300))),
            };
            for (int d = random.Next(0, 5); d > 0; d--) frame.Shape.Add((uint)random.Next(0, int.MaxValue));
            byte[] wire = frame.ToByteArray();
            // Split into segments so fields straddle buffer boundaries as they do in a pipe.
            TensorFrame decoded = TensorFrameDecoder.Instance.Decode(Segmented(wire, random.Next(1, 50)));
            Assert.Equal(TensorFrame.Parser.ParseFrom(wire), decoded);
            TensorFrameDecoder.Instance.Release(decoded);
            Assert.True(decoded.Payload.IsEmpty && decoded.Routing.IsEmpty);
        }
    }

    [Fact]
    public void UnknownFieldsAreSkippedAndUnpackedShapesRead()
    {
        var expected = new TensorFrame { BatchId = 3, Layer = 4, Payload = ByteString.CopyFrom(1, 2, 3) };
        expected.Shape.Add(5);
        expected.Shape.Add(300);
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        output.WriteTag(1, WireFormat.WireType.Varint); output.WriteUInt64(3);
        output.WriteTag(15, WireFormat.WireType.Varint); output.WriteUInt64(ulong.MaxValue);
        output.WriteTag(3, WireFormat.WireType.Varint); output.WriteUInt32(5);
        output.WriteTag(16, WireFormat.WireType.Fixed32); output.WriteFixed32(9);
        output.WriteTag(3, WireFormat.WireType.Varint); output.WriteUInt32(300);
        output.WriteTag(17, WireFormat.WireType.Fixed64); output.WriteFixed64(9);
        output.WriteTag(2, WireFormat.WireType.Varint); output.WriteUInt32(4);
        output.WriteTag(18, WireFormat.WireType.LengthDelimited); output.WriteBytes(ByteString.CopyFrom(new byte[40]));
        output.WriteTag(5, WireFormat.WireType.LengthDelimited); output.WriteBytes(ByteString.CopyFrom(9, 9));
        // A repeated scalar bytes field: the last value wins.
        output.WriteTag(5, WireFormat.WireType.LengthDelimited); output.WriteBytes(ByteString.CopyFrom(1, 2, 3));
        output.Flush();
        TensorFrame decoded = TensorFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(stream.ToArray()));
        // Unlike the generated parser, the decoder does not keep unknown fields for re-sending.
        Assert.Equal(expected, decoded);
    }

    [Fact]
    public void TruncatedOrMalformedFramesFailWithInternal()
    {
        var frame = new TensorFrame { BatchId = 1, Layer = 2, Payload = ByteString.CopyFrom(new byte[1000]) };
        frame.Shape.Add(1000);
        byte[] wire = frame.ToByteArray();
        foreach (int cut in new[] { 1, wire.Length / 2, wire.Length - 1 })
        {
            Assert.Throws<InvalidDataException>(() => TensorFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(wire, 0, cut)));
        }
        // A group wire type is not proto3.
        Assert.Throws<InvalidDataException>(() => TensorFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>([0x0B])));
    }

    [Fact]
    public void AFieldWithTheWrongWireTypeIsSkippedAsTheGeneratedParserDoes()
    {
        // batch_id (field 1) sent length-delimited, then layer = 5 as it should be.
        byte[] wire = [0x0A, 0x01, 0x00, 0x10, 0x05];
        TensorFrame decoded = TensorFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(wire));
        Assert.Equal((0ul, 5u), (decoded.BatchId, decoded.Layer));
        Assert.Equal((TensorFrame.Parser.ParseFrom(wire).BatchId, TensorFrame.Parser.ParseFrom(wire).Layer), (decoded.BatchId, decoded.Layer));
    }

    private static byte[] Bytes(Random random, int n)
    {
        var b = new byte[n];
        random.NextBytes(b);
        return b;
    }

    private static ReadOnlySequence<byte> Segmented(byte[] data, int pieces)
    {
        int step = Math.Max(1, data.Length / pieces);
        Segment? first = null, last = null;
        for (int at = 0; at < data.Length; at += step)
        {
            var memory = data.AsMemory(at, Math.Min(step, data.Length - at));
            if (first is null) first = last = new Segment(memory, 0);
            else last = last!.Append(memory);
        }
        return first is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(first, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long index)
        {
            Memory = memory;
            RunningIndex = index;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
