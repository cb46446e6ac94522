using System.Buffers;
using Cluster.Protos.V1;
using Cluster.Transport;
using Google.Protobuf;

namespace Cluster.Transport.Tests;

/// <summary>The pooled KvTransfer decoder reads every part as the generated parser does.</summary>
public class KvTransferDecoderTests
{
    [Fact]
    public void EveryPartDecodesAsTheGeneratedParserDoes()
    {
        var random = new Random(5);
        var first = new TokenEvent { TokenId = 7, Logprob = -0.25f, PromptTokens = 100, CachedPromptTokens = 64 };
        first.TopLogprobs.Add(new TopLogprob { TokenId = 9, Logprob = -1.5f });
        var parts = new List<KvTransfer>
        {
            new() { Header = new KvHeader { Layers = 61, RowSize = 576, Dtype = "bf16", PromptTokens = 100, CachedPromptTokens = 64 } },
            new() { Done = new KvDone { First = first, Checksum = ulong.MaxValue - 3 } },
            new() { Slice = new KvSlice() },
        };
        for (int i = 0; i < 50; i++)
        {
            var data = new byte[random.Next(1, 300_000)];
            random.NextBytes(data);
            parts.Add(new KvTransfer { Slice = new KvSlice { Layer = (uint)random.Next(0, 61), Start = (uint)random.Next(), Count = (uint)random.Next(1, 2000), Data = ByteString.CopyFrom(data) } });
        }
        foreach (KvTransfer part in parts)
        {
            byte[] wire = part.ToByteArray();
            KvTransfer decoded = KvTransferDecoder.Instance.Decode(new ReadOnlySequence<byte>(wire));
            Assert.Equal(KvTransfer.Parser.ParseFrom(wire), decoded);
            KvTransferDecoder.Instance.Release(decoded);
        }
    }

    [Fact]
    public void TheLastPartOnTheWireWinsAndBrokenPartsFailWithInternal()
    {
        var slice = new KvTransfer { Slice = new KvSlice { Layer = 1, Start = 2, Count = 3, Data = ByteString.CopyFrom(1, 2, 3) } };
        var header = new KvTransfer { Header = new KvHeader { Layers = 3 } };
        byte[] both = [.. slice.ToByteArray(), .. header.ToByteArray()];
        Assert.Equal(header, KvTransferDecoder.Instance.Decode(new ReadOnlySequence<byte>(both)));

        byte[] wire = slice.ToByteArray();
        Assert.Throws<InvalidDataException>(() => KvTransferDecoder.Instance.Decode(new ReadOnlySequence<byte>(wire, 0, wire.Length - 1)));
        // A header whose bytes end inside a field.
        byte[] badHeader = [0x0A, 0x02, 0x08, 0x80];
        Assert.Throws<InvalidDataException>(() => KvTransferDecoder.Instance.Decode(new ReadOnlySequence<byte>(badHeader)));
    }
}
