using System.Buffers;
using Cluster.Protos.V1;
using Google.Protobuf;

namespace Cluster.Transport.Tests;

/// <summary>The pooled DispatchFrame decoder reads exactly what the generated parser reads, and fails as it does.</summary>
public class DispatchFrameDecoderTests
{
    [Fact]
    public void RandomFramesDecodeAsTheGeneratedParserDoes()
    {
        var random = new Random(11);
        for (int i = 0; i < 200; i++)
        {
            var frame = new DispatchFrame
            {
                BatchId = (ulong)random.NextInt64(),
                Layer = (uint)random.Next(0, 62),
                Rows = (uint)random.Next(0, 600),
                Hidden = (uint)random.Next(0, 8000),
                Dtype = (TensorDType)random.Next(0, 6),
                Activations = Bytes(random, random.Next(0, 4) == 0 ? 0 : random.Next(1, 200_000)),
                Scales = Bytes(random, random.Next(0, 2000)),
                TopK = (uint)random.Next(0, 9),
                ExpertIds = Bytes(random, random.Next(0, 2000)),
                Weights = Bytes(random, random.Next(0, 2000)),
                PlanVersion = (ulong)random.Next(0, 3),
            };
            byte[] wire = frame.ToByteArray();
            DispatchFrame decoded = DispatchFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(wire));
            Assert.Equal(DispatchFrame.Parser.ParseFrom(wire), decoded);
            DispatchFrameDecoder.Instance.Release(decoded);
            Assert.True(decoded.Activations.IsEmpty && decoded.Scales.IsEmpty && decoded.ExpertIds.IsEmpty && decoded.Weights.IsEmpty);
        }
    }

    [Fact]
    public void TruncatedFramesFailWithInternal()
    {
        byte[] wire = new DispatchFrame { BatchId = 5, Rows = 2, Activations = ByteString.CopyFrom(new byte[64]) }.ToByteArray();
        Assert.Throws<InvalidDataException>(() => DispatchFrameDecoder.Instance.Decode(new ReadOnlySequence<byte>(wire, 0, wire.Length - 3)));
    }

    private static ByteString Bytes(Random random, int n)
    {
        var b = new byte[n];
        random.NextBytes(b);
        return ByteString.CopyFrom(b);
    }
}
