using Cluster.Protos.V1;
using Grpc.Core;

namespace Cluster.Transport.Tests;

/// <summary>A client that cancels or disposes a running call ends the server handler's call (its token fires); the server keeps serving.</summary>
public class CancellationTests(TestServer server) : IClassFixture<TestServer>
{
    [Fact]
    public async Task CancellingADuplexCallMidStreamCancelsTheServerHandler()
    {
        var cancelled = server.NextCancellation(TestServer.BidiMethod);
        using var cts = new CancellationTokenSource();
        using var call = server.Echo.Bidi(deadline: TestData.In(30), cancellationToken: cts.Token);
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "first" });
        Assert.True(await call.ResponseStream.MoveNext());
        // The handler is inside a slow request when the cancel comes, so only the stream's reset can end it.
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "slow", DelayMs = 30_000 });
        cts.Cancel();
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);
        Assert.Equal(TestServer.BidiMethod, await cancelled.WaitAsync(TimeSpan.FromSeconds(20)));
        await server.AssertStillServing();
    }

    [Fact]
    public async Task CancellingAUnaryCallCancelsTheServerHandler()
    {
        // Connected first: the cancel must find the call on the server, not still connecting.
        await server.AssertStillServing();
        var cancelled = server.NextCancellation(TestServer.UnaryMethod);
        using var cts = new CancellationTokenSource();
        var call = server.Echo.UnaryAsync(new EchoRequest { DelayMs = 30_000 }, deadline: TestData.In(60), cancellationToken: cts.Token);
        cts.CancelAfter(500);
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);
        Assert.Equal(TestServer.UnaryMethod, await cancelled.WaitAsync(TimeSpan.FromSeconds(20)));
        await server.AssertStillServing();
    }

    [Fact]
    public async Task DisposingARunningClientStreamResetsItAndTheServerSeesIt()
    {
        var cancelled = server.NextCancellation(TestServer.ClientStreamMethod);
        var call = server.Echo.ClientStream(deadline: TestData.In(30));
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "x" });
        call.Dispose();
        Assert.Equal(TestServer.ClientStreamMethod, await cancelled.WaitAsync(TimeSpan.FromSeconds(20)));
        await server.AssertStillServing();
    }

    [Fact]
    public async Task DisposingARunningDuplexCallCancelsTheServerHandler()
    {
        var cancelled = server.NextCancellation(TestServer.BidiMethod);
        var call = server.Echo.Bidi(deadline: TestData.In(30));
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "first" });
        Assert.True(await call.ResponseStream.MoveNext());
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "slow", DelayMs = 30_000 });
        call.Dispose();
        Assert.Equal(TestServer.BidiMethod, await cancelled.WaitAsync(TimeSpan.FromSeconds(20)));
        await server.AssertStillServing();
    }
}
