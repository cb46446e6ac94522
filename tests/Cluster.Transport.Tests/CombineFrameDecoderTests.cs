using System.Buffers;
using Cluster.Protos.V1;
using Google.Protobuf;

namespace Cluster.Transport.Tests;

/// <summary>The pooled CombineFrame decoder (what attention nodes read from Dispatch) reads exactly what the generated parser reads.</summary>
public class CombineFrameDecoderTests
{
    [Fact]
    public void RandomFramesDecodeAsTheGeneratedParserDoes()
    {
        var random = new Random(13);
        for (int i = 0; i < 200; i++)
        {
            var sums = new byte[random.Next(0, 4) == 0 ? 0 : random.Next(1, 200_000)];
            random.NextBytes(sums);
            var frame = new CombineFrame
            {
                BatchId = (ulong)random.NextInt64(),
                Layer = (uint)random.Next(0, 62),
                Rows = (uint)random.Next(0, 600),
                Dtype = (TensorDType)random.Next(0, 6),
                PartialSums = ByteString.CopyFrom(sums),
                Error = random.Next(0, 5) == 0 ? "plan version 7 ≠ 8" : "",
            };
            byte[] wire = frame.ToByteArray();
            CombineFrame decoded = CombineFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(wire));
            Assert.Equal(CombineFrame.Parser.ParseFrom(wire), decoded);
            CombineFrameDecoder.Instance.Release(decoded);
            Assert.True(decoded.PartialSums.IsEmpty);
        }
    }

    [Fact]
    public void UnknownFieldsAreSkippedAndTheLastPartialSumsWin()
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        output.WriteTag(1, WireFormat.WireType.Varint); output.WriteUInt64(9);
        output.WriteTag(5, WireFormat.WireType.LengthDelimited); output.WriteBytes(ByteString.CopyFrom(1, 1, 1, 1));
        output.WriteTag(20, WireFormat.WireType.LengthDelimited); output.WriteBytes(ByteString.CopyFrom(new byte[30]));
        output.WriteTag(21, WireFormat.WireType.Fixed64); output.WriteFixed64(1);
        output.WriteTag(5, WireFormat.WireType.LengthDelimited); output.WriteBytes(ByteString.CopyFrom(2, 3));
        output.WriteTag(3, WireFormat.WireType.Varint); output.WriteUInt32(4);
        output.Flush();
        CombineFrame decoded = CombineFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(stream.ToArray()));
        Assert.Equal(new CombineFrame { BatchId = 9, Rows = 4, PartialSums = ByteString.CopyFrom(2, 3) }, decoded);
        CombineFrameDecoder.Instance.Release(decoded);
    }

    [Fact]
    public void TruncatedFramesFailWithInvalidData()
    {
        byte[] wire = new CombineFrame { BatchId = 5, Rows = 2, PartialSums = ByteString.CopyFrom(new byte[64]), Error = "x" }.ToByteArray();
        foreach (int cut in new[] { 1, wire.Length / 2, wire.Length - 1 })
            Assert.Throws<InvalidDataException>(() => CombineFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(wire, 0, cut)));
    }
}
