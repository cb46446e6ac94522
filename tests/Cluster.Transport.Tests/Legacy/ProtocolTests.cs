using Cluster.Transport.Legacy;
using System.Buffers;
using Cluster.Protos.V1;
using Google.Protobuf;

namespace Cluster.Transport.Legacy.Tests;

public class ProtocolTests
{
    [Theory]
    [InlineData("1H", 36_000_000_000L)]
    [InlineData("2M", 1_200_000_000L)]
    [InlineData("3S", 30_000_000L)]
    [InlineData("250m", 2_500_000L)]
    [InlineData("7u", 70L)]
    [InlineData("1n", 1L)]      // rounded up to one tick, never to zero
    [InlineData("1000n", 10L)]
    [InlineData("99999999S", 999_999_990_000_000L)]
    public void ParsesEveryTimeoutUnit(string text, long ticks)
    {
        Assert.True(GrpcTimeout.TryParse(text, out var t));
        Assert.Equal(ticks, t.Ticks);
    }

    [Theory]
    [InlineData("")]
    [InlineData("S")]
    [InlineData("10")]
    [InlineData("10x")]
    [InlineData("-1S")]
    [InlineData("123456789S")]  // nine digits
    public void RejectsMalformedTimeouts(string text) => Assert.False(GrpcTimeout.TryParse(text, out _));

    [Theory]
    [InlineData(0L, "0n")]
    [InlineData(5L, "500n")]
    [InlineData(10_000_000L, "1000000u")]
    [InlineData(36_000_000_000L, "3600000m")]
    [InlineData(TimeSpan.TicksPerDay * 400, "34560000S")]
    [InlineData(TimeSpan.TicksPerMinute * 100_000_000, "1666667H")]
    public void FormatsWithinEightDigitsRoundingUp(long ticks, string expected)
    {
        string text = GrpcTimeout.Format(TimeSpan.FromTicks(ticks));
        Assert.Equal(expected, text);
        Assert.True(GrpcTimeout.TryParse(text, out var back));
        Assert.True(back.Ticks >= ticks);
    }

    [Theory]
    [InlineData("plain text", "plain text")]
    [InlineData("100%", "100%25")]
    [InlineData("ünï", "%C3%BCn%C3%AF")]
    [InlineData("line\nbreak", "line%0Abreak")]
    public void PercentEncodesGrpcMessage(string text, string wire)
    {
        string encoded = PercentEncoding.Encode(text);
        Assert.Equal(wire, encoded);
        Assert.Equal(text, PercentEncoding.Decode(encoded));
    }

    [Fact]
    public void PercentDecodingKeepsMalformedEscapes() => Assert.Equal("50%zz and %4", PercentEncoding.Decode("50%zz and %4"));

    [Fact]
    public void BinaryMetadataIsUnpaddedBase64AndAcceptsPadding()
    {
        var md = new Metadata();
        md.Add("trace-bin", new byte[] { 1, 2, 3, 4 });
        Assert.Equal("AQIDBA", Metadata.EncodeValue(md.First()));
        var received = new Metadata();
        received.TryAddFromWire("Trace-Bin", "AQIDBA==");
        received.TryAddFromWire("other-bin", "AQIDBA");
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, received.GetBytes("trace-bin"));
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, received.GetBytes("other-bin"));
        Assert.False(received.TryAddFromWire("grpc-timeout", "1S"));
        Assert.Throws<RpcException>(() => received.TryAddFromWire("bad-bin", "A"));
    }

    [Fact]
    public void MetadataRejectsBadKeysAndValues()
    {
        var md = new Metadata();
        Assert.Throws<ArgumentException>(() => md.Add("x-bin", "text"));
        Assert.Throws<ArgumentException>(() => md.Add("x", new byte[1]));
        Assert.Throws<ArgumentException>(() => md.Add("grpc-status", "0"));
        Assert.Throws<ArgumentException>(() => md.Add("bad key", "v"));
        Assert.Throws<ArgumentException>(() => md.Add("k", "naïve"));
    }

    [Fact]
    public void FramesRoundTripAcrossSegmentBoundaries()
    {
        var message = new EchoRequest { Text = "frame", Payload = ByteString.CopyFrom(Enumerable.Range(0, 3000).Select(i => (byte)i).ToArray()) };
        foreach (bool gzip in new[] { false, true })
        {
            var writer = new ArrayBufferWriter<byte>();
            MessageFraming.Write(writer, message, null, gzip);
            MessageFraming.Write(writer, message, null, gzip);
            // Split the bytes into 7-byte segments so the header and body straddle segment edges.
            var sequence = Segments(writer.WrittenSpan.ToArray(), 7);
            for (int i = 0; i < 2; i++)
            {
                Assert.True(MessageFraming.TryRead(ref sequence, EchoRequest.Parser, 1 << 20, gzip ? "gzip" : null, out var back));
                Assert.Equal(message, back);
            }
            Assert.True(sequence.IsEmpty);
        }
    }

    [Fact]
    public void IncompleteFrameWaitsAndOversizedFrameFailsBeforeItsBodyArrives()
    {
        var writer = new ArrayBufferWriter<byte>();
        MessageFraming.Write(writer, new EchoRequest { Payload = ByteString.CopyFrom(new byte[100]) }, null, false);
        var partial = new ReadOnlySequence<byte>(writer.WrittenMemory[..50]);
        Assert.False(MessageFraming.TryRead(ref partial, EchoRequest.Parser, 1000, null, out _));
        Assert.Equal(50, partial.Length);

        var headerOnly = new ReadOnlySequence<byte>(writer.WrittenMemory[..5]);
        var e = Assert.Throws<RpcException>(() => MessageFraming.TryRead(ref headerOnly, EchoRequest.Parser, 50, null, out _));
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
    }

    [Fact]
    public void CompressedFlagWithoutEncodingIsInternal()
    {
        var bytes = new byte[] { 1, 0, 0, 0, 0 };
        var seq = new ReadOnlySequence<byte>(bytes);
        var e = Assert.Throws<RpcException>(() => MessageFraming.TryRead(ref seq, EchoRequest.Parser, 100, null, out _));
        Assert.Equal(StatusCode.Internal, e.StatusCode);
    }

    [Fact]
    public void SendLimitIsResourceExhausted()
    {
        var e = Assert.Throws<RpcException>(() => MessageFraming.Write(new ArrayBufferWriter<byte>(),
            new EchoRequest { Payload = ByteString.CopyFrom(new byte[200]) }, 100, false));
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
    }

    private static ReadOnlySequence<byte> Segments(byte[] data, int size)
    {
        Segment? first = null, last = null;
        for (int i = 0; i < data.Length; i += size)
        {
            var mem = data.AsMemory(i, Math.Min(size, data.Length - i));
            if (first is null) first = last = new Segment(mem, 0);
            else last = last!.Append(mem);
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long index) { Memory = memory; RunningIndex = index; }
        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
