using Cluster.Transport.Legacy;
using Cluster.Protos.V1;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>grpc-status-details-bin passes through untouched, handlers may end a call by setting a status, and timeouts of any size work.</summary>
public class StatusDetailsAndTimeoutTests : IAsyncLifetime
{
    private static readonly Method<EchoRequest, EchoReply> Detailed = new(MethodType.Unary, "test.Edge", "Detailed", EchoRequest.Parser, EchoReply.Parser);
    private static readonly Method<EchoRequest, EchoReply> SetsStatus = new(MethodType.Unary, "test.Edge", "SetsStatus", EchoRequest.Parser, EchoReply.Parser);
    private static readonly Method<EchoRequest, EchoReply> Deadline = new(MethodType.Unary, "test.Edge", "Deadline", EchoRequest.Parser, EchoReply.Parser);
    private static readonly byte[] Details = [8, 3, 18, 4, 98, 97, 100, 33, 0, 255];

    private GrpcServer _server = null!;
    private GrpcChannel _channel = null!;

    public async Task InitializeAsync()
    {
        _server = await GrpcServer.StartAsync(new GrpcServerOptions(), new Edge());
        _channel = GrpcChannel.ForAddress(_server.Address, new GrpcChannelOptions { Resilience = null });
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task StatusDetailsBinaryPassesThrough()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => _channel.UnaryAsync(Detailed, new EchoRequest()));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Equal(Details, e.Trailers.GetBytes(GrpcProtocol.StatusDetails));
    }

    [Fact]
    public async Task HandlerSetStatusEndsTheCallWithoutAMessage()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => _channel.UnaryAsync(SetsStatus, new EchoRequest()));
        Assert.Equal((StatusCode.NotFound, "nothing here"), (e.StatusCode, e.Status.Detail));
        Assert.Equal("v", e.Trailers.GetValue("x-trailer"));
    }

    [Theory]
    [InlineData(5.0)]          // sent in microseconds
    [InlineData(36_000.0)]     // ten hours, sent in milliseconds
    [InlineData(9e9)]          // longer than any timer: no deadline at all
    public async Task ServerSeesTheDeadlineTheClientSent(double seconds)
    {
        var reply = await _channel.UnaryAsync(Deadline, new EchoRequest(), new CallOptions { Timeout = TimeSpan.FromSeconds(seconds) });
        double remaining = double.Parse(reply.Text, System.Globalization.CultureInfo.InvariantCulture);
        if (seconds > 1e9) Assert.Equal(-1, remaining);
        else Assert.InRange(remaining, seconds - 5, seconds + 0.001);
    }

    private sealed class Edge : IGrpcService
    {
        public void Bind(ServiceBinder binder)
        {
            binder.Unary(Detailed, (_, _) =>
            {
                var trailers = new Metadata();
                trailers.Add(GrpcProtocol.StatusDetails, Details);
                throw new RpcException(new Status(StatusCode.InvalidArgument, "see details"), trailers);
            });
            binder.Unary(SetsStatus, (_, context) =>
            {
                context.Status = new Status(StatusCode.NotFound, "nothing here");
                context.ResponseTrailers.Add("x-trailer", "v");
                return Task.FromResult(new EchoReply());
            });
            binder.Unary(Deadline, (_, context) => Task.FromResult(new EchoReply
            {
                Text = (context.Deadline == DateTime.MaxValue ? -1 : (context.Deadline - DateTime.UtcNow).TotalSeconds)
                    .ToString(System.Globalization.CultureInfo.InvariantCulture),
            }));
        }
    }
}
