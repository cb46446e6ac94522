using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Services;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>Hand-built HTTP/2 requests the typed client would never send: each gets the right status, and the server keeps serving.</summary>
public class MalformedRequestTests(TestServer server) : IClassFixture<TestServer>, IDisposable
{
    private readonly HttpMessageInvoker _http = new(new SocketsHttpHandler());

    public void Dispose() => _http.Dispose();

    [Fact]
    public async Task InvalidCompressedFlagIsInternal() =>
        await AssertStatus(await Send([2, 0, 0, 0, 0]), StatusCode.Internal, "compressed flag");

    [Fact]
    public async Task LengthOverTheLimitIsResourceExhaustedBeforeTheBodyArrives() =>
        await AssertStatus(await Send([0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]), StatusCode.ResourceExhausted, "larger than max");

    [Fact]
    public async Task TruncatedMessageIsInternal()
    {
        var frame = Frame(new EchoRequest { Text = "truncate me" });
        await AssertStatus(await Send(frame[..^3]), StatusCode.Internal, "ended inside a message");
    }

    [Fact]
    public async Task TruncatedHeaderIsInternal() =>
        await AssertStatus(await Send([0, 0, 0]), StatusCode.Internal, "ended inside a message");

    [Fact]
    public async Task CompressedFlagWithoutEncodingIsInternal()
    {
        var frame = Frame(new EchoRequest { Text = "x" });
        frame[0] = 1;
        await AssertStatus(await Send(frame), StatusCode.Internal, "no grpc-encoding");
    }

    [Fact]
    public async Task GarbageProtobufIsInternal() =>
        await AssertStatus(await Send([0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF]), StatusCode.Internal, "Failed to parse");

    [Fact]
    public async Task EmptyBodyForUnaryIsInternal() =>
        await AssertStatus(await Send([]), StatusCode.Internal, "without a message");

    [Fact]
    public async Task TwoMessagesForUnaryIsInternal()
    {
        var one = Frame(new EchoRequest { Text = "a" });
        await AssertStatus(await Send([.. one, .. one]), StatusCode.Internal, "More than one request");
    }

    [Fact]
    public async Task UnknownEncodingIsUnimplementedAndListsWhatIsAccepted()
    {
        using var response = await Send(Frame(new EchoRequest()), request => request.Headers.TryAddWithoutValidation("grpc-encoding", "br"));
        await AssertStatus(response, StatusCode.Unimplemented, "Unsupported grpc-encoding");
        Assert.Equal("identity,gzip", string.Join(",", response.Headers.GetValues("grpc-accept-encoding")));
    }

    [Fact]
    public async Task WrongContentTypeIsHttp415()
    {
        using var response = await Send(Frame(new EchoRequest()), request => request.Content!.Headers.ContentType = new MediaTypeHeaderValue("application/json"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        await AssertStillServing();
    }

    [Fact]
    public async Task GrpcPlusProtoContentTypeIsAccepted()
    {
        using var response = await Send(Frame(new EchoRequest { Text = "proto" }), request => request.Content!.Headers.ContentType = new MediaTypeHeaderValue("application/grpc+proto"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal("proto", EchoReply.Parser.ParseFrom(body.AsSpan(5).ToArray()).Text);
        Assert.Equal("0", response.TrailingHeaders.GetValues("grpc-status").Single());
    }

    [Fact]
    public async Task ResponsesAreGzippedWhenTheServerIsToldToAndTheClientAccepts()
    {
        await using var gz = await GrpcServer.StartAsync(new GrpcServerOptions { ResponseCompression = "gzip" }, new EchoService());
        var request = Request(gz.Address, EchoMethods.Unary.FullName, Frame(new EchoRequest { Payload = Google.Protobuf.ByteString.CopyFrom(new byte[1000]) }));
        request.Headers.TryAddWithoutValidation("grpc-accept-encoding", "identity,gzip");
        using var response = await _http.SendAsync(request, CancellationToken.None);
        Assert.Equal("gzip", response.Headers.GetValues("grpc-encoding").Single());
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(1, body[0]);
        Assert.True(BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(1)) < 200, "1000 zero bytes should compress well");
    }

    [Fact]
    public async Task ClientResettingMidRequestLeavesTheServerServing()
    {
        var content = new StalledContent(Frame(new EchoRequest { Text = "part" }));
        var request = Request(server.Server.Address, EchoMethods.ClientStream.FullName, []);
        request.Content = content;
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        var cancelled = server.NextCancellation(EchoMethods.ClientStream.FullName);
        using var cts = new CancellationTokenSource();
        var send = _http.SendAsync(request, cts.Token);
        await content.Sent.WaitAsync(TimeSpan.FromSeconds(10));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => send);
        Assert.Equal(EchoMethods.ClientStream.FullName, await cancelled.WaitAsync(TimeSpan.FromSeconds(10)));
        await AssertStillServing();
    }

    private async Task<HttpResponseMessage> Send(byte[] body, Action<HttpRequestMessage>? edit = null)
    {
        var request = Request(server.Server.Address, EchoMethods.Unary.FullName, body);
        edit?.Invoke(request);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return await _http.SendAsync(request, cts.Token);
    }

    private static HttpRequestMessage Request(Uri address, string path, byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, path))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = content,
        };
        request.Headers.TryAddWithoutValidation("te", "trailers");
        return request;
    }

    private static byte[] Frame(EchoRequest message)
    {
        var writer = new ArrayBufferWriter<byte>();
        MessageFraming.Write(writer, message, null, false);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>Reads the status where the server put it (headers when trailers-only, else trailers), then checks the server still answers.</summary>
    private async Task AssertStatus(HttpResponseMessage response, StatusCode code, string messagePart)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await response.Content.ReadAsByteArrayAsync();
        string? status = Header(response.Headers, "grpc-status") ?? Header(response.TrailingHeaders, "grpc-status");
        string? message = Header(response.Headers, "grpc-message") ?? Header(response.TrailingHeaders, "grpc-message");
        Assert.Equal(((int)code).ToString(), status);
        Assert.Contains(messagePart, PercentEncoding.Decode(message ?? ""));
        response.Dispose();
        await AssertStillServing();
    }

    private static string? Header(HttpHeaders headers, string name) =>
        headers.TryGetValues(name, out var values) ? values.First() : null;

    private async Task AssertStillServing()
    {
        var reply = await server.Channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Text = "still here" }, new CallOptions { Timeout = TimeSpan.FromSeconds(10) });
        Assert.Equal("still here", reply.Text);
    }

    /// <summary>A body that sends one frame and then never ends, until the request is cancelled.</summary>
    private sealed class StalledContent(byte[] first) : HttpContent
    {
        private readonly TaskCompletionSource _sent = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task Sent => _sent.Task;

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            await stream.WriteAsync(first, cancellationToken);
            await stream.FlushAsync(cancellationToken);
            _sent.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        protected override bool TryComputeLength(out long length) { length = 0; return false; }
    }
}
