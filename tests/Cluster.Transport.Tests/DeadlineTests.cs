using System.Globalization;
using Cluster.Protos.V1;
using Cluster.Transport.Services;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Transport.Tests;

/// <summary>Deadlines both ways: the client gives up, the server's handler is told, and the server sees what the client sent.</summary>
public class DeadlineTests(TestServer server) : IClassFixture<TestServer>
{
    [Fact]
    public async Task DeadlineExceededOnBothSides()
    {
        // A connected channel, so that the short deadline is spent on the server and not on connecting.
        await server.AssertStillServing();
        var cancelled = server.NextCancellation(TestServer.UnaryMethod);
        var started = DateTime.UtcNow;
        // Long enough for the handler to start on a loaded machine: a call whose deadline has passed when it arrives
        // is refused by the server without running the handler, and there would be nothing to cancel.
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Echo.UnaryAsync(new EchoRequest { DelayMs = 30_000 }, deadline: DateTime.UtcNow.AddSeconds(2)).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15), "the client waited for the handler instead of its deadline");
        // The server read grpc-timeout and cancelled its handler's token too.
        Assert.Equal(TestServer.UnaryMethod, await cancelled.WaitAsync(TimeSpan.FromSeconds(20)));
        await server.AssertStillServing();
    }

    [Fact]
    public async Task DeadlineOfAStreamCancelsItsHandler()
    {
        await server.AssertStillServing();
        var cancelled = server.NextCancellation(TestServer.BidiMethod);
        using var call = server.Echo.Bidi(deadline: DateTime.UtcNow.AddSeconds(2));
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "slow", DelayMs = 30_000 });
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.Equal(TestServer.BidiMethod, await cancelled.WaitAsync(TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task ExpiredDeadlineFailsWithoutReachingTheServer()
    {
        // A server of its own, so that no other call's count can land in between.
        await using var fresh = await TestServer.StartAsync(new GrpcServerOptions());
        using var peer = PeerChannel.ForAddress(fresh.Address);
        var echo = new Echo.EchoClient(peer.Invoker);
        var e = await Assert.ThrowsAsync<RpcException>(() => echo.UnaryAsync(new EchoRequest(), deadline: DateTime.UtcNow.AddSeconds(-1)).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.Equal("after", (await echo.UnaryAsync(new EchoRequest { Text = "after" }, deadline: TestData.In(10))).Text);
        // Only the second call arrived.
        var metrics = fresh.Services.GetRequiredService<CallMetrics>();
        Assert.Equal(1, Enum.GetValues<StatusCode>().Sum(code => metrics.Count(TestServer.UnaryMethod, code)));
    }

    [Fact]
    public async Task TheChannelsDefaultDeadlineAppliesToAUnaryCallWithNone()
    {
        using var peer = PeerChannel.ForAddress(server.Server.Address, new GrpcClientOptions { DefaultUnaryDeadline = TimeSpan.FromMilliseconds(500), Resilience = null });
        var echo = new Echo.EchoClient(peer.Invoker);
        // Connected first, so that the short default deadline is spent on the server and not on connecting.
        await echo.UnaryAsync(new EchoRequest(), deadline: TestData.In(10));
        var cancelled = server.NextCancellation(TestServer.UnaryMethod);
        var e = await Assert.ThrowsAsync<RpcException>(() => echo.UnaryAsync(new EchoRequest { DelayMs = 30_000 }).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.Equal(TestServer.UnaryMethod, await cancelled.WaitAsync(TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task TheChannelsDefaultDeadlineLeavesAnExplicitOneAlone()
    {
        using var peer = PeerChannel.ForAddress(server.Server.Address, new GrpcClientOptions { DefaultUnaryDeadline = TimeSpan.FromMilliseconds(100), Resilience = null });
        var reply = await new Echo.EchoClient(peer.Invoker).UnaryAsync(new EchoRequest { Text = "late", DelayMs = 500 }, deadline: TestData.In(20));
        Assert.Equal("late", reply.Text);
    }
}

/// <summary>The deadline the server's handler sees is the one the client set (or the channel's default), within what the trip took.</summary>
public class ServerSeenDeadlineTests : IAsyncLifetime
{
    private GrpcServer _server = null!;

    public async Task InitializeAsync() => _server = await GrpcServer.StartAsync(new GrpcServerOptions(),
        b => b.Services.AddSingleton<DeadlineProbe>(), app => app.MapGrpcService<DeadlineProbe>());

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Theory]
    [InlineData(5.0)]
    [InlineData(36_000.0)] // ten hours: past what a microsecond grpc-timeout can say in eight digits
    public async Task ServerSeesTheDeadlineTheClientSent(double seconds)
    {
        using var peer = PeerChannel.ForAddress(_server.Address);
        var reply = await new Echo.EchoClient(peer.Invoker).UnaryAsync(new EchoRequest(), deadline: TestData.In(seconds));
        // Generous below (a loaded machine), tight above: the server must never see more time than the client gave.
        Assert.InRange(Remaining(reply), seconds - 5, seconds + 0.01);
    }

    [Fact]
    public async Task AUnaryCallWithoutADeadlineCarriesTheChannelsDefault()
    {
        using var peer = PeerChannel.ForAddress(_server.Address, new GrpcClientOptions { DefaultUnaryDeadline = TimeSpan.FromSeconds(7) });
        var reply = await new Echo.EchoClient(peer.Invoker).UnaryAsync(new EchoRequest());
        Assert.InRange(Remaining(reply), 2, 7.01);
    }

    [Fact]
    public async Task AStreamWithoutADeadlineCarriesNone()
    {
        using var peer = PeerChannel.ForAddress(_server.Address, new GrpcClientOptions { DefaultUnaryDeadline = TimeSpan.FromSeconds(7) });
        using var call = new Echo.EchoClient(peer.Invoker).ServerStream(new EchoRequest());
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(-1, Remaining(call.ResponseStream.Current));
    }

    private static double Remaining(EchoReply reply) => double.Parse(reply.Text, CultureInfo.InvariantCulture);

    /// <summary>Replies with the seconds left until the call's deadline as the server sees it, -1 for none.</summary>
    private sealed class DeadlineProbe : Echo.EchoBase
    {
        public override Task<EchoReply> Unary(EchoRequest request, ServerCallContext context) => Task.FromResult(Report(context));

        public override Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context) =>
            responseStream.WriteAsync(Report(context));

        private static EchoReply Report(ServerCallContext context) => new()
        {
            Text = (context.Deadline == DateTime.MaxValue ? -1 : (context.Deadline - DateTime.UtcNow).TotalSeconds).ToString(CultureInfo.InvariantCulture),
        };
    }
}
