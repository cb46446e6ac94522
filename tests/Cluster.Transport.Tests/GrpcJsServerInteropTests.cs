using Cluster.Protos.V1;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.Transport.Tests;

/// <summary>node/echo_server.js (a grpc-js 1.14 server) as a child process with our PeerChannel to it; "gzip" makes it compress its replies.</summary>
public abstract class GrpcJsServerBase(string mode) : IAsyncLifetime
{
    public NodeProcess Node { get; private set; } = null!;
    public PeerChannel Peer { get; private set; } = null!;
    public Echo.EchoClient Echo { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Node = new NodeProcess("echo_server.js", mode);
        string line = await Node.WaitForLine("PORT ", TimeSpan.FromSeconds(60));
        Peer = PeerChannel.ForAddress($"http://127.0.0.1:{int.Parse(line[5..])}");
        Echo = new Echo.EchoClient(Peer.Invoker);
    }

    public Task DisposeAsync()
    {
        Peer.Dispose();
        Node.Dispose();
        return Task.CompletedTask;
    }
}

public sealed class GrpcJsServer() : GrpcJsServerBase("plain");

public sealed class GzipGrpcJsServer() : GrpcJsServerBase("gzip");

/// <summary>Our client against a grpc-js server: every call type and the protocol's failure cases.</summary>
public class GrpcJsServerInteropTests(GrpcJsServer js) : EchoCallTypeTests, IClassFixture<GrpcJsServer>
{
    private const int MB = 1024 * 1024;

    protected override Echo.EchoClient Echo => js.Echo;

    [Fact]
    public async Task DeadlineExceeded()
    {
        await js.Echo.UnaryAsync(new EchoRequest(), deadline: TestData.In(10));
        var started = DateTime.UtcNow;
        var e = await Assert.ThrowsAsync<RpcException>(() => js.Echo.UnaryAsync(new EchoRequest { DelayMs = 30_000 }, deadline: DateTime.UtcNow.AddMilliseconds(300)).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task CancellingMidStreamReachesTheGrpcJsHandler()
    {
        using var cts = new CancellationTokenSource();
        using var call = js.Echo.Bidi(deadline: TestData.In(30), cancellationToken: cts.Token);
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "first" });
        Assert.True(await call.ResponseStream.MoveNext());
        cts.Cancel();
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);
        Assert.Equal("CANCELLED Bidi", await js.Node.WaitForLine("CANCELLED Bidi", TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task ErrorStatusWithMessageAndBinaryMetadata()
    {
        byte[] bin = [0, 1, 2, 253, 254, 255];
        const string text = "precondition failed: ünïcode 100% 日本";
        var e = await Assert.ThrowsAsync<RpcException>(() => js.Echo.UnaryAsync(new EchoRequest { Text = text, FailCode = (int)StatusCode.FailedPrecondition },
            new Metadata { { "echo-bin", bin } }, TestData.In(10)).ResponseAsync);
        Assert.Equal((StatusCode.FailedPrecondition, text), (e.StatusCode, e.Status.Detail));
        Assert.Equal(bin, e.Trailers.GetValueBytes("echo-bin"));
    }

    [Fact]
    public async Task ThreeMegabytesAndTheFourMegabyteLimitBothWays()
    {
        var payload = TestData.Pattern(3 * MB);
        Assert.Equal(payload, (await js.Echo.UnaryAsync(new EchoRequest { Payload = payload }, deadline: TestData.In(30))).Payload);

        var sent = await Assert.ThrowsAsync<RpcException>(() => js.Echo.UnaryAsync(new EchoRequest { Payload = TestData.Pattern(5 * MB) }, deadline: TestData.In(30)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, sent.StatusCode);

        var received = await Assert.ThrowsAsync<RpcException>(() => js.Echo.UnaryAsync(new EchoRequest { ReplySize = 5 * MB }, deadline: TestData.In(30)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, received.StatusCode);
        // The connection survives both.
        Assert.Equal("after", (await js.Echo.UnaryAsync(new EchoRequest { Text = "after" }, deadline: TestData.In(10))).Text);
    }

    [Fact]
    public async Task GzipRequests()
    {
        var payload = ByteString.CopyFrom(new byte[200_000]);
        var reply = await js.Echo.UnaryAsync(new EchoRequest { Payload = payload }, Compression.Gzip, TestData.In(10));
        Assert.Equal(payload, reply.Payload);
    }

    [Fact]
    public async Task UnimplementedMethod()
    {
        var nope = new Method<EchoRequest, EchoReply>(MethodType.Unary, "cluster.v1.Echo", "Nope",
            Marshallers.Create(m => m.ToByteArray(), EchoRequest.Parser.ParseFrom), Marshallers.Create(m => m.ToByteArray(), EchoReply.Parser.ParseFrom));
        var e = await Assert.ThrowsAsync<RpcException>(() => js.Peer.Invoker.AsyncUnaryCall(nope, null, new CallOptions(deadline: TestData.In(10)), new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
    }

    [Fact]
    public async Task PooledTensorFramesRoundTrip()
    {
        using var call = new TensorStream.TensorStreamClient(js.Peer.Invoker).Exchange(deadline: TestData.In(30));
        using var frames = new PooledReader<TensorFrame>(call.ResponseStream, TensorFrameDecoder.Instance);
        var payload = TestData.Pattern(256 * 1024);
        for (uint i = 0; i < 4; i++)
        {
            await call.RequestStream.WriteAsync(new TensorFrame { BatchId = i, Layer = 3, Shape = { 64, 1024 }, Dtype = TensorDType.Fp8E4M3, Payload = payload });
            Assert.True(await frames.MoveNext());
            var back = frames.Current;
            Assert.Equal((i, 3u, TensorDType.Fp8E4M3), (back.BatchId, back.Layer, back.Dtype));
            Assert.Equal([64u, 1024u], back.Shape);
            Assert.Equal(payload, back.Payload);
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await frames.MoveNext());
    }
}

/// <summary>grpc-js compressing every reply: our client decompresses them.</summary>
public class GrpcJsGzipServerTests(GzipGrpcJsServer js) : IClassFixture<GzipGrpcJsServer>
{
    [Fact]
    public async Task CompressedRepliesOnEveryCallType()
    {
        var payload = ByteString.CopyFrom(new byte[100_000]);
        Assert.Equal(payload, (await js.Echo.UnaryAsync(new EchoRequest { Payload = payload }, Compression.Gzip, TestData.In(10))).Payload);
        using var call = js.Echo.ServerStream(new EchoRequest { Count = 3, Payload = payload }, Compression.Gzip, TestData.In(10));
        int n = 0;
        await foreach (var r in call.ResponseStream.ReadAllAsync())
        {
            Assert.Equal(payload, r.Payload);
            n++;
        }
        Assert.Equal(3, n);
    }
}
