using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using Cluster.Protos.V1;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.Transport.Tests;

/// <summary>
/// Hand-built HTTP/2 requests (prior knowledge, as a gRPC client speaks) that our client would never send: each gets
/// the status grpc-dotnet gives it, read where a raw client finds it (headers when trailers-only, else trailers), and
/// the server keeps serving.
/// </summary>
public class MalformedRequestTests(TestServer server) : IClassFixture<TestServer>, IDisposable
{
    private readonly HttpMessageInvoker _http = new(new SocketsHttpHandler());

    public void Dispose() => _http.Dispose();

    [Fact]
    public async Task TruncatedMessageIsInternal()
    {
        byte[] frame = Frame(new EchoRequest { Text = "truncate me" });
        await AssertStatus(await Send(frame[..^3]), StatusCode.Internal, "Incomplete message");
    }

    [Fact]
    public async Task TruncatedHeaderIsInternal() =>
        await AssertStatus(await Send([0, 0, 0]), StatusCode.Internal, "Incomplete message");

    /// <summary>
    /// grpc-dotnet would report what the generated parser throws as the handler's exception (UNKNOWN, "Exception was
    /// thrown by handler"); every service binds through PooledMethodBinder, whose marshallers say INTERNAL, as other
    /// implementations do.
    /// </summary>
    [Fact]
    public async Task GarbageProtobufIsInternalNamingTheParse() =>
        await AssertStatus(await Send([0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF]), StatusCode.Internal, "Failed to parse message");

    [Fact]
    public async Task LengthOverTheLimitIsResourceExhaustedBeforeTheBodyArrives()
    {
        // 5 MB announced, 3 bytes sent: the header alone is refused.
        byte[] header = [0, 0, 0, 0, 0, 1, 2, 3];
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(1), 5 * 1024 * 1024);
        await AssertStatus(await Send(header), StatusCode.ResourceExhausted, "exceeds the maximum");
    }

    /// <summary>A length past int.MaxValue is grpc-dotnet's IOException "Message too large", which it reports as UNKNOWN.</summary>
    [Fact]
    public async Task LengthPastTwoGigabytesIsUnknown() =>
        await AssertStatus(await Send([0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]), StatusCode.Unknown, "Exception was thrown by handler");

    /// <summary>grpc-dotnet's InvalidDataException "Unexpected compressed flag value", reported as UNKNOWN.</summary>
    [Fact]
    public async Task InvalidCompressedFlagIsUnknown() =>
        await AssertStatus(await Send([2, 0, 0, 0, 0]), StatusCode.Unknown, "Exception was thrown by handler");

    [Fact]
    public async Task CompressedFlagWithoutEncodingIsInternal()
    {
        byte[] frame = Frame(new EchoRequest { Text = "x" });
        frame[0] = 1;
        await AssertStatus(await Send(frame), StatusCode.Internal, "compress");
    }

    [Fact]
    public async Task EmptyBodyForUnaryIsInternal() =>
        await AssertStatus(await Send([]), StatusCode.Internal, "message");

    [Fact]
    public async Task TwoMessagesForUnaryIsInternal()
    {
        byte[] one = Frame(new EchoRequest { Text = "a" });
        await AssertStatus(await Send([.. one, .. one]), StatusCode.Internal, "message");
    }

    [Fact]
    public async Task UnknownMethodIsUnimplemented() =>
        await AssertStatus(await Send(Frame(new EchoRequest()), path: "/cluster.v1.Echo/Nope"), StatusCode.Unimplemented, "Method is unimplemented");

    [Fact]
    public async Task UnknownServiceIsUnimplemented() =>
        await AssertStatus(await Send(Frame(new EchoRequest()), path: "/cluster.v1.Nope/Unary"), StatusCode.Unimplemented, "Service is unimplemented");

    [Fact]
    public async Task CompressedMessageInAnUnknownEncodingIsUnimplementedAndListsWhatIsAccepted()
    {
        byte[] frame = Frame(new EchoRequest { Text = "x" });
        frame[0] = 1;
        await AssertStatus(await Send(frame, request => request.Headers.TryAddWithoutValidation("grpc-encoding", "br")), StatusCode.Unimplemented, "Unsupported grpc-encoding",
            response =>
            {
                string? accepted = Header(response.Headers, "grpc-accept-encoding") ?? Header(response.TrailingHeaders, "grpc-accept-encoding");
                Assert.True(accepted?.Contains("gzip") == true, $"grpc-accept-encoding: {accepted}");
            });
    }

    /// <summary>The encoding names how compressed messages are compressed; an uncompressed one needs none it knows.</summary>
    [Fact]
    public async Task UncompressedMessageUnderAnUnknownEncodingIsServed()
    {
        using var response = await Send(Frame(new EchoRequest { Text = "plain" }), request => request.Headers.TryAddWithoutValidation("grpc-encoding", "br"));
        byte[] body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal("plain", EchoReply.Parser.ParseFrom(body.AsSpan(5).ToArray()).Text);
    }

    [Fact]
    public async Task WrongContentTypeIsHttp415()
    {
        using var response = await Send(Frame(new EchoRequest()), request => request.Content!.Headers.ContentType = new MediaTypeHeaderValue("application/json"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        await server.AssertStillServing();
    }

    [Fact]
    public async Task GrpcPlusProtoContentTypeIsAccepted()
    {
        using var response = await Send(Frame(new EchoRequest { Text = "proto" }), request => request.Content!.Headers.ContentType = new MediaTypeHeaderValue("application/grpc+proto"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        byte[] body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal("proto", EchoReply.Parser.ParseFrom(body.AsSpan(5).ToArray()).Text);
        Assert.Equal("0", response.TrailingHeaders.GetValues("grpc-status").Single());
    }

    [Fact]
    public async Task TruncatedTensorFrameOnThePooledExchangeIsInternal()
    {
        var frame = new TensorFrame { BatchId = 1, Layer = 2, Payload = ByteString.CopyFrom(new byte[1000]) };
        // A whole gRPC message whose protobuf ends inside the payload field: the pooled decoder, not the framing, sees it.
        byte[] wire = frame.ToByteArray()[..^10];
        await AssertStatus(await Send(Frame(wire), path: "/cluster.v1.TensorStream/Exchange"), StatusCode.Internal, "Failed to parse message");
    }

    [Fact]
    public async Task ResponsesAreGzippedWhenTheServerIsToldToAndTheClientAccepts()
    {
        await using var gz = await TestServer.StartAsync(new GrpcServerOptions { ResponseCompression = "gzip" });
        var request = Request(gz.Address, TestServer.UnaryMethod, Frame(new EchoRequest { Payload = ByteString.CopyFrom(new byte[1000]) }));
        request.Headers.TryAddWithoutValidation("grpc-accept-encoding", "identity,gzip");
        using var response = await _http.SendAsync(request, CancellationToken.None);
        Assert.Equal("gzip", response.Headers.GetValues("grpc-encoding").Single());
        byte[] body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(1, body[0]);
        Assert.True(BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(1)) < 200, "1000 zero bytes should compress well");
    }

    [Fact]
    public async Task ClientResettingMidRequestLeavesTheServerServing()
    {
        var content = new StalledContent(Frame(new EchoRequest { Text = "part" }));
        var request = Request(server.Server.Address, TestServer.ClientStreamMethod, []);
        request.Content = content;
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        var cancelled = server.NextCancellation(TestServer.ClientStreamMethod);
        using var cts = new CancellationTokenSource();
        var send = _http.SendAsync(request, cts.Token);
        await content.Sent.WaitAsync(TimeSpan.FromSeconds(20));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => send);
        Assert.Equal(TestServer.ClientStreamMethod, await cancelled.WaitAsync(TimeSpan.FromSeconds(20)));
        await server.AssertStillServing();
    }

    private async Task<HttpResponseMessage> Send(byte[] body, Action<HttpRequestMessage>? edit = null, string path = TestServer.UnaryMethod)
    {
        var request = Request(server.Server.Address, path, body);
        edit?.Invoke(request);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
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

    private static byte[] Frame(IMessage message) => Frame(message.ToByteArray());

    /// <summary>The gRPC length-prefixed framing: an uncompressed flag, the big-endian length, the message.</summary>
    private static byte[] Frame(byte[] message)
    {
        var frame = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
        message.CopyTo(frame, 5);
        return frame;
    }

    private async Task AssertStatus(HttpResponseMessage response, StatusCode code, string messagePart, Action<HttpResponseMessage>? alsoCheck = null)
    {
        using var _ = response;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await response.Content.ReadAsByteArrayAsync();
        string? status = Header(response.Headers, "grpc-status") ?? Header(response.TrailingHeaders, "grpc-status");
        string message = Uri.UnescapeDataString(Header(response.Headers, "grpc-message") ?? Header(response.TrailingHeaders, "grpc-message") ?? "");
        Assert.True(((int)code).ToString() == status && message.Contains(messagePart, StringComparison.Ordinal),
            $"expected {code} with '{messagePart}', got grpc-status {status} '{message}'");
        alsoCheck?.Invoke(response);
        await server.AssertStillServing();
    }

    private static string? Header(HttpHeaders headers, string name) => headers.TryGetValues(name, out var values) ? values.First() : null;

    /// <summary>A body that sends one frame and then never ends, until the request is cancelled.</summary>
    private sealed class StalledContent(byte[] first) : HttpContent
    {
        private readonly TaskCompletionSource _sent = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task Sent => _sent.Task;

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            await stream.WriteAsync(first, cancellationToken);
            await stream.FlushAsync(cancellationToken);
            _sent.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
