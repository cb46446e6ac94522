using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Services;
using Google.Protobuf;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>Our client over the four call types of cluster.v1.Echo, against whichever server a subclass names.</summary>
public abstract class EchoCallTypeTests
{
    protected static readonly CallOptions TenSeconds = new() { Timeout = TimeSpan.FromSeconds(10) };

    protected abstract GrpcChannel Channel { get; }

    [Fact]
    public async Task Unary()
    {
        var reply = await Channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Text = "héllo", Payload = ByteString.CopyFrom(0, 1, 255) }, TenSeconds);
        Assert.Equal("héllo", reply.Text);
        Assert.Equal(new byte[] { 0, 1, 255 }, reply.Payload.ToByteArray());
    }

    [Fact]
    public async Task ServerStreaming()
    {
        using var call = Channel.ServerStreaming(EchoMethods.ServerStream, new EchoRequest { Text = "s", Count = 5 }, TenSeconds);
        var indices = new List<int>();
        await foreach (var reply in call.ResponseStream.ReadAllAsync()) indices.Add(reply.Index);
        Assert.Equal([0, 1, 2, 3, 4], indices);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task ClientStreaming()
    {
        using var call = Channel.ClientStreaming(EchoMethods.ClientStream, TenSeconds);
        foreach (var t in new[] { "a", "b", "c" }) await call.RequestStream.WriteAsync(new EchoRequest { Text = t, Payload = ByteString.CopyFrom(new byte[10]) });
        await call.RequestStream.CompleteAsync();
        var reply = await call.ResponseAsync();
        Assert.Equal(("abc", 3, "30"), (reply.Text, reply.Index, reply.Payload.ToStringUtf8()));
    }

    [Fact]
    public async Task DuplexInterleavesRequestsAndReplies()
    {
        using var call = Channel.DuplexStreaming(EchoMethods.Bidi, TenSeconds);
        for (int i = 0; i < 20; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = "m" + i });
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal(("m" + i, i), (call.ResponseStream.Current.Text, call.ResponseStream.Current.Index));
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }
}
