using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Health;
using Cluster.Transport.Legacy.Services;
using Google.Protobuf;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>Our client against our server, over every call type and failure the protocol defines.</summary>
public class LoopbackTests(TestServer server) : EchoCallTypeTests, IClassFixture<TestServer>
{
    protected override GrpcChannel Channel => server.Channel;

    [Fact]
    public async Task ServerStreamingWithNoMessagesIsTrailersOnlyOk()
    {
        using var call = server.Channel.ServerStreaming(EchoMethods.ServerStream, new EchoRequest { Count = 0 }, TenSeconds);
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task DeadlineExceededOnBothSides()
    {
        var cancelled = server.NextCancellation(EchoMethods.Unary.FullName);
        var started = DateTime.UtcNow;
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Channel.UnaryAsync(EchoMethods.Unary,
            new EchoRequest { DelayMs = 10_000 }, new CallOptions { Timeout = TimeSpan.FromMilliseconds(200) }));
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
        // The server parsed grpc-timeout and cancelled its handler too.
        Assert.Equal(EchoMethods.Unary.FullName, await cancelled.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task ExpiredDeadlineFailsWithoutSending()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Channel.UnaryAsync(EchoMethods.Unary,
            new EchoRequest(), new CallOptions { Deadline = DateTime.UtcNow.AddSeconds(-1) }));
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
    }

    [Fact]
    public async Task CancellingMidStreamCancelsTheServerHandler()
    {
        var cancelled = server.NextCancellation(EchoMethods.Bidi.FullName);
        using var cts = new CancellationTokenSource();
        using var call = server.Channel.DuplexStreaming(EchoMethods.Bidi, TenSeconds with { CancellationToken = cts.Token });
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "first" });
        Assert.True(await call.ResponseStream.MoveNext());
        cts.Cancel();
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);
        Assert.Equal(EchoMethods.Bidi.FullName, await cancelled.WaitAsync(TimeSpan.FromSeconds(10)));
        await AssertStillServing();
    }

    [Fact]
    public async Task DisposingARunningCallResetsItAndTheServerSeesIt()
    {
        var cancelled = server.NextCancellation(EchoMethods.ClientStream.FullName);
        var call = server.Channel.ClientStreaming(EchoMethods.ClientStream, TenSeconds);
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "x" });
        call.Dispose();
        Assert.Equal(EchoMethods.ClientStream.FullName, await cancelled.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task ErrorStatusCarriesMessageAndBinaryTrailers()
    {
        var headers = new Metadata();
        byte[] bin = [0, 1, 2, 253, 254, 255];
        headers.Add("echo-bin", bin);
        const string text = "precondition failed: ünïcode 100% 日本\n";
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Channel.UnaryAsync(EchoMethods.Unary,
            new EchoRequest { Text = text, FailCode = (int)StatusCode.FailedPrecondition }, TenSeconds with { Headers = headers }));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Equal(text, e.Status.Detail);
        Assert.Equal(bin, e.Trailers.GetBytes("echo-bin"));
    }

    [Fact]
    public async Task ErrorAfterMessagesComesInTrailers()
    {
        using var call = server.Channel.DuplexStreaming(EchoMethods.Bidi, TenSeconds);
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "ok" });
        Assert.True(await call.ResponseStream.MoveNext());
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "gone", FailCode = (int)StatusCode.Aborted });
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal((StatusCode.Aborted, "gone"), (e.StatusCode, e.Status.Detail));
        Assert.Equal(StatusCode.Aborted, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task ServerFailingMidUploadGivesItsStatusToWritesAndResponse()
    {
        using var call = server.Channel.ClientStreaming(EchoMethods.ClientStream, TenSeconds);
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "stop", FailCode = (int)StatusCode.FailedPrecondition });
        var big = new EchoRequest { Payload = Pattern(256 * 1024) };
        for (int i = 0; i < 200; i++)
        {
            try { await call.RequestStream.WriteAsync(big); }
            catch (RpcException e)
            {
                Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
                break;
            }
        }
        var final = await Assert.ThrowsAsync<RpcException>(call.ResponseAsync);
        Assert.Equal((StatusCode.FailedPrecondition, "stop"), (final.StatusCode, final.Status.Detail));
    }

    [Fact]
    public async Task ThreeMegabytesRoundTripAndFiveAreRejectedBothWays()
    {
        var payload = Pattern(3 * 1024 * 1024);
        var reply = await server.Channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Payload = payload }, TenSeconds);
        Assert.Equal(payload, reply.Payload);

        var tooBig = await Assert.ThrowsAsync<RpcException>(() => server.Channel.UnaryAsync(EchoMethods.Unary,
            new EchoRequest { Payload = Pattern(5 * 1024 * 1024) }, TenSeconds));
        Assert.Equal(StatusCode.ResourceExhausted, tooBig.StatusCode);

        var tooBigReply = await Assert.ThrowsAsync<RpcException>(() => server.Channel.UnaryAsync(EchoMethods.Unary,
            new EchoRequest { ReplySize = 5 * 1024 * 1024 }, TenSeconds));
        Assert.Equal(StatusCode.ResourceExhausted, tooBigReply.StatusCode);
        Assert.Contains("larger than max", tooBigReply.Status.Detail);
        await AssertStillServing();
    }

    [Fact]
    public async Task LimitsAreConfigurablePerSide()
    {
        await using var big = await GrpcServer.StartAsync(new GrpcServerOptions { MaxReceiveMessageSize = 8 * 1024 * 1024 }, new EchoService());
        using var channel = GrpcChannel.ForAddress(big.Address, new GrpcChannelOptions { MaxReceiveMessageSize = 8 * 1024 * 1024, MaxSendMessageSize = 6 * 1024 * 1024 });
        var payload = Pattern(5 * 1024 * 1024);
        Assert.Equal(payload, (await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Payload = payload }, TenSeconds)).Payload);
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Payload = Pattern(7 * 1024 * 1024) }, TenSeconds));
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("Sending message larger than max", e.Status.Detail);
    }

    [Fact]
    public async Task GzipBothWays()
    {
        var payload = ByteString.CopyFrom(new byte[300_000]);
        var reply = await server.Channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Payload = payload }, TenSeconds with { Gzip = true });
        Assert.Equal(payload, reply.Payload);
        using var call = server.Channel.DuplexStreaming(EchoMethods.Bidi, TenSeconds with { Gzip = true });
        for (int i = 0; i < 3; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = "z" + i, Payload = payload });
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal(payload, call.ResponseStream.Current.Payload);
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }

    [Fact]
    public async Task UnknownMethodIsUnimplemented()
    {
        var nope = new Method<EchoRequest, EchoReply>(MethodType.Unary, "cluster.v1.Echo", "Nope", EchoRequest.Parser, EchoReply.Parser);
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Channel.UnaryAsync(nope, new EchoRequest(), TenSeconds));
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
    }

    [Fact]
    public async Task HealthCheckAndWatch()
    {
        var health = new HealthClient(server.Channel);
        Assert.Equal(ServingStatus.Serving, (await health.CheckAsync("", TenSeconds)).Status);
        var missing = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync("no.such.Service", TenSeconds));
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);

        using var watch = health.Watch("cluster.v1.Watched", TenSeconds);
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.ServiceUnknown, watch.ResponseStream.Current.Status);
        server.Health.SetStatus("cluster.v1.Watched", ServingStatus.Serving);
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.Serving, watch.ResponseStream.Current.Status);
        server.Health.SetStatus("cluster.v1.Watched", ServingStatus.NotServing);
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.NotServing, watch.ResponseStream.Current.Status);
    }

    [Fact]
    public async Task ResponseHeadersAndCustomMetadataPassThrough()
    {
        var headers = new Metadata();
        headers.Add("x-request-id", "abc-123");
        using var call = server.Channel.ServerStreaming(EchoMethods.ServerStream, new EchoRequest { Count = 1 }, TenSeconds with { Headers = headers });
        var responseHeaders = await call.ResponseHeadersAsync();
        Assert.Null(responseHeaders.GetValue("grpc-encoding"));
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.False(await call.ResponseStream.MoveNext());
    }

    [Fact]
    public async Task ManyConcurrentCallsOnOneChannel()
    {
        var tasks = Enumerable.Range(0, 200).Select(i => server.Channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Text = "c" + i }, TenSeconds)).ToArray();
        var replies = await Task.WhenAll(tasks);
        for (int i = 0; i < replies.Length; i++) Assert.Equal("c" + i, replies[i].Text);
    }

    [Fact]
    public async Task UnreachableServerIsUnavailable()
    {
        using var channel = GrpcChannel.ForAddress("http://127.0.0.1:1", new GrpcChannelOptions { Resilience = null });
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.Unary, new EchoRequest(), TenSeconds));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
    }

    private async Task AssertStillServing()
    {
        var reply = await server.Channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Text = "still here" }, TenSeconds);
        Assert.Equal("still here", reply.Text);
    }

    internal static ByteString Pattern(int n)
    {
        var bytes = new byte[n];
        for (int i = 0; i < n; i++) bytes[i] = (byte)(i * 7);
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }
}
