using Cluster.Protos.V1;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.Transport.Tests;

/// <summary>Our PeerChannel client over the four call types of cluster.v1.Echo, against whichever server a subclass names.</summary>
public abstract class EchoCallTypeTests
{
    protected abstract Echo.EchoClient Echo { get; }

    [Fact]
    public async Task Unary()
    {
        var reply = await Echo.UnaryAsync(new EchoRequest { Text = "héllo", Payload = ByteString.CopyFrom(0, 1, 255) }, deadline: TestData.In(10));
        Assert.Equal("héllo", reply.Text);
        Assert.Equal(new byte[] { 0, 1, 255 }, reply.Payload.ToByteArray());
    }

    [Fact]
    public async Task ServerStreaming()
    {
        using var call = Echo.ServerStream(new EchoRequest { Text = "s", Count = 5 }, deadline: TestData.In(10));
        var indices = new List<int>();
        await foreach (var reply in call.ResponseStream.ReadAllAsync()) indices.Add(reply.Index);
        Assert.Equal([0, 1, 2, 3, 4], indices);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task ServerStreamingWithNoMessagesEndsOk()
    {
        using var call = Echo.ServerStream(new EchoRequest { Count = 0 }, deadline: TestData.In(10));
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task ClientStreaming()
    {
        using var call = Echo.ClientStream(deadline: TestData.In(10));
        foreach (var t in new[] { "a", "b", "c" }) await call.RequestStream.WriteAsync(new EchoRequest { Text = t, Payload = ByteString.CopyFrom(new byte[10]) });
        await call.RequestStream.CompleteAsync();
        var reply = await call.ResponseAsync;
        Assert.Equal(("abc", 3, "30"), (reply.Text, reply.Index, reply.Payload.ToStringUtf8()));
    }

    [Fact]
    public async Task DuplexInterleavesRequestsAndReplies()
    {
        using var call = Echo.Bidi(deadline: TestData.In(10));
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

    [Fact]
    public async Task ManyConcurrentCallsOnOneChannel()
    {
        var replies = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => Echo.UnaryAsync(new EchoRequest { Text = "c" + i }, deadline: TestData.In(30)).ResponseAsync));
        for (int i = 0; i < replies.Length; i++) Assert.Equal("c" + i, replies[i].Text);
    }
}

/// <summary>The call types against our own server.</summary>
public class LoopbackCallTypeTests(TestServer server) : EchoCallTypeTests, IClassFixture<TestServer>
{
    protected override Echo.EchoClient Echo => server.Echo;

    [Fact]
    public async Task UnknownMethodIsUnimplemented()
    {
        var nope = new Method<EchoRequest, EchoReply>(MethodType.Unary, "cluster.v1.Echo", "Nope",
            Marshallers.Create(m => m.ToByteArray(), EchoRequest.Parser.ParseFrom), Marshallers.Create(m => m.ToByteArray(), EchoReply.Parser.ParseFrom));
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Peer.Invoker.AsyncUnaryCall(nope, null, new CallOptions(deadline: TestData.In(10)), new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
    }

    [Fact]
    public async Task UnreachableServerIsUnavailable()
    {
        // Port 1 on loopback refuses connections; resilience off, so this is the channel's own answer.
        using var peer = PeerChannel.ForAddress("http://127.0.0.1:1", new GrpcClientOptions { Resilience = null });
        var e = await Assert.ThrowsAsync<RpcException>(() => new Echo.EchoClient(peer.Invoker).UnaryAsync(new EchoRequest(), deadline: TestData.In(10)).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
    }
}
