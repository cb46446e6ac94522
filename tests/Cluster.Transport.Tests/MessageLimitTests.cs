using Cluster.Protos.V1;
using Grpc.Core;

namespace Cluster.Transport.Tests;

/// <summary>Message size limits: 4 MB by default on each side's receive, configurable per side, RESOURCE_EXHAUSTED when over, and the connection survives.</summary>
public class MessageLimitTests(TestServer server) : IClassFixture<TestServer>
{
    private const int MB = 1024 * 1024;

    [Fact]
    public async Task ThreeMegabytesRoundTrip()
    {
        var payload = TestData.Pattern(3 * MB);
        var reply = await server.Echo.UnaryAsync(new EchoRequest { Payload = payload }, deadline: TestData.In(30));
        Assert.Equal(payload, reply.Payload);
    }

    [Fact]
    public async Task ARequestOverTheServersReceiveLimitIsResourceExhausted()
    {
        // The client sends without a limit (MaxSendMessageSize null): the server's 4 MB default rejects it.
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Echo.UnaryAsync(new EchoRequest { Payload = TestData.Pattern(5 * MB) }, deadline: TestData.In(30)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        await server.AssertStillServing();
    }

    [Fact]
    public async Task AReplyOverTheClientsReceiveLimitIsResourceExhausted()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Echo.UnaryAsync(new EchoRequest { ReplySize = 5 * MB }, deadline: TestData.In(30)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("exceeds the maximum", e.Status.Detail);
        await server.AssertStillServing();
    }

    [Fact]
    public async Task AStreamedReplyOverTheClientsReceiveLimitIsResourceExhausted()
    {
        using var call = server.Echo.ServerStream(new EchoRequest { Count = 2, ReplySize = 5 * MB }, deadline: TestData.In(30));
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        await server.AssertStillServing();
    }

    [Fact]
    public async Task TheClientsSendLimitStopsARequestBeforeItLeaves()
    {
        using var peer = PeerChannel.ForAddress(server.Server.Address, new GrpcClientOptions { MaxSendMessageSize = 1 * MB, Resilience = null });
        var echo = new Echo.EchoClient(peer.Invoker);
        var e = await Assert.ThrowsAsync<RpcException>(() => echo.UnaryAsync(new EchoRequest { Payload = TestData.Pattern(2 * MB) }, deadline: TestData.In(30)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("Sending message exceeds the maximum", e.Status.Detail);
        Assert.Equal("small", (await echo.UnaryAsync(new EchoRequest { Text = "small" }, deadline: TestData.In(10))).Text);
    }

    [Fact]
    public async Task LimitsAreConfigurablePerSide()
    {
        await using var big = await TestServer.StartAsync(new GrpcServerOptions { MaxReceiveMessageSize = 8 * MB });
        using var peer = PeerChannel.ForAddress(big.Address, new GrpcClientOptions { MaxReceiveMessageSize = 8 * MB, MaxSendMessageSize = 6 * MB });
        var echo = new Echo.EchoClient(peer.Invoker);
        var payload = TestData.Pattern(5 * MB);
        Assert.Equal(payload, (await echo.UnaryAsync(new EchoRequest { Payload = payload }, deadline: TestData.In(30))).Payload);
        var e = await Assert.ThrowsAsync<RpcException>(() => echo.UnaryAsync(new EchoRequest { Payload = TestData.Pattern(7 * MB) }, deadline: TestData.In(30)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
    }

    [Fact]
    public async Task TheServersSendLimitIsResourceExhausted()
    {
        await using var limited = await TestServer.StartAsync(new GrpcServerOptions { MaxSendMessageSize = 1 * MB });
        using var peer = PeerChannel.ForAddress(limited.Address);
        var echo = new Echo.EchoClient(peer.Invoker);
        var e = await Assert.ThrowsAsync<RpcException>(() => echo.UnaryAsync(new EchoRequest { ReplySize = 2 * MB }, deadline: TestData.In(30)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
    }
}
