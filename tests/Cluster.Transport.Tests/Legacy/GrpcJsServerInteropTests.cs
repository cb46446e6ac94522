using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Services;
using Google.Protobuf;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>node/echo_server.js (a grpc-js 1.14 server) as a child process; "gzip" makes it compress its replies.</summary>
public abstract class GrpcJsServerBase(string mode) : IAsyncLifetime
{
    public NodeProcess Node { get; private set; } = null!;
    public GrpcChannel Channel { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Node = new NodeProcess("echo_server.js", mode);
        string line = await Node.WaitForLine("PORT ", TimeSpan.FromSeconds(30));
        Channel = GrpcChannel.ForAddress($"http://127.0.0.1:{int.Parse(line[5..])}");
    }

    public Task DisposeAsync()
    {
        Channel.Dispose();
        Node.Dispose();
        return Task.CompletedTask;
    }
}

public sealed class GrpcJsServer() : GrpcJsServerBase("plain");

public sealed class GzipGrpcJsServer() : GrpcJsServerBase("gzip");

/// <summary>Our client against a grpc-js server: every call type and the protocol's failure cases.</summary>
public class GrpcJsServerInteropTests(GrpcJsServer js) : EchoCallTypeTests, IClassFixture<GrpcJsServer>
{
    protected override GrpcChannel Channel => js.Channel;

    [Fact]
    public async Task DeadlineExceeded()
    {
        var started = DateTime.UtcNow;
        var e = await Assert.ThrowsAsync<RpcException>(() => js.Channel.UnaryAsync(EchoMethods.Unary,
            new EchoRequest { DelayMs = 5000 }, new CallOptions { Timeout = TimeSpan.FromMilliseconds(200) }));
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task CancellingMidStreamReachesTheGrpcJsHandler()
    {
        using var cts = new CancellationTokenSource();
        using var call = js.Channel.DuplexStreaming(EchoMethods.Bidi, TenSeconds with { CancellationToken = cts.Token });
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "first" });
        Assert.True(await call.ResponseStream.MoveNext());
        cts.Cancel();
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);
        Assert.Equal("CANCELLED Bidi", await js.Node.WaitForLine("CANCELLED Bidi", TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task ErrorStatusWithMessageAndBinaryMetadata()
    {
        var headers = new Metadata();
        byte[] bin = [0, 1, 2, 253, 254, 255];
        headers.Add("echo-bin", bin);
        const string text = "precondition failed: ünïcode 100% 日本";
        var e = await Assert.ThrowsAsync<RpcException>(() => js.Channel.UnaryAsync(EchoMethods.Unary,
            new EchoRequest { Text = text, FailCode = (int)StatusCode.FailedPrecondition }, TenSeconds with { Headers = headers }));
        Assert.Equal((StatusCode.FailedPrecondition, text), (e.StatusCode, e.Status.Detail));
        Assert.Equal(bin, e.Trailers.GetBytes("echo-bin"));
    }

    [Fact]
    public async Task ThreeMegabytesAndTheFourMegabyteLimitBothWays()
    {
        var payload = LoopbackTests.Pattern(3 * 1024 * 1024);
        Assert.Equal(payload, (await js.Channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Payload = payload }, TenSeconds)).Payload);

        var sent = await Assert.ThrowsAsync<RpcException>(() => js.Channel.UnaryAsync(EchoMethods.Unary,
            new EchoRequest { Payload = LoopbackTests.Pattern(5 * 1024 * 1024) }, TenSeconds));
        Assert.Equal(StatusCode.ResourceExhausted, sent.StatusCode);

        var received = await Assert.ThrowsAsync<RpcException>(() => js.Channel.UnaryAsync(EchoMethods.Unary,
            new EchoRequest { ReplySize = 5 * 1024 * 1024 }, TenSeconds));
        Assert.Equal(StatusCode.ResourceExhausted, received.StatusCode);
        // The connection survives both.
        Assert.Equal("after", (await js.Channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Text = "after" }, TenSeconds)).Text);
    }

    [Fact]
    public async Task GzipRequests()
    {
        var payload = ByteString.CopyFrom(new byte[200_000]);
        var reply = await js.Channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Payload = payload }, TenSeconds with { Gzip = true });
        Assert.Equal(payload, reply.Payload);
    }

    [Fact]
    public async Task UnimplementedMethod()
    {
        var nope = new Method<EchoRequest, EchoReply>(MethodType.Unary, "cluster.v1.Echo", "Nope", EchoRequest.Parser, EchoReply.Parser);
        var e = await Assert.ThrowsAsync<RpcException>(() => js.Channel.UnaryAsync(nope, new EchoRequest(), TenSeconds));
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
    }

    [Fact]
    public async Task TensorFramesRoundTrip()
    {
        using var call = new TensorStreamClient(js.Channel).Exchange(TenSeconds);
        var payload = LoopbackTests.Pattern(256 * 1024);
        for (uint i = 0; i < 4; i++)
        {
            await call.RequestStream.WriteAsync(new TensorFrame { BatchId = i, Layer = 3, Shape = { 64, 1024 }, Dtype = TensorDType.Fp8E4M3, Payload = payload });
            Assert.True(await call.ResponseStream.MoveNext());
            var back = call.ResponseStream.Current;
            Assert.Equal((i, 3u, TensorDType.Fp8E4M3), (back.BatchId, back.Layer, back.Dtype));
            Assert.Equal(payload, back.Payload);
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }
}

/// <summary>grpc-js compressing every reply: our client decompresses them.</summary>
public class GrpcJsGzipServerTests(GzipGrpcJsServer js) : IClassFixture<GzipGrpcJsServer>
{
    [Fact]
    public async Task CompressedRepliesOnEveryCallType()
    {
        var options = new CallOptions { Timeout = TimeSpan.FromSeconds(10), Gzip = true };
        var payload = ByteString.CopyFrom(new byte[100_000]);
        Assert.Equal(payload, (await js.Channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Payload = payload }, options)).Payload);
        using var call = js.Channel.ServerStreaming(EchoMethods.ServerStream, new EchoRequest { Count = 3, Payload = payload }, options);
        int n = 0;
        await foreach (var r in call.ResponseStream.ReadAllAsync()) { Assert.Equal(payload, r.Payload); n++; }
        Assert.Equal(3, n);
    }
}
