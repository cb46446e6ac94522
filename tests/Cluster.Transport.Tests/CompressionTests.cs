using Cluster.Protos.V1;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Transport.Tests;

/// <summary>Gzip both ways between our client and our server: requests when the call asks, replies when the server is set to.</summary>
public class CompressionTests : IAsyncLifetime
{
    private GrpcServer _server = null!;
    private PeerChannel _peer = null!;

    public async Task InitializeAsync()
    {
        _server = await GrpcServer.StartAsync(new GrpcServerOptions { ResponseCompression = "gzip" },
            b => b.Services.AddSingleton<EncodingProbe>(), app => app.MapGrpcService<EncodingProbe>());
        _peer = PeerChannel.ForAddress(_server.Address);
    }

    public async Task DisposeAsync()
    {
        _peer.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task UnaryGzipBothWays()
    {
        var payload = ByteString.CopyFrom(new byte[300_000]);
        var reply = await new Echo.EchoClient(_peer.Invoker).UnaryAsync(new EchoRequest { Payload = payload }, Compression.Gzip, TestData.In(10));
        // The reply arrived gzipped (MalformedRequestTests shows the bytes on the wire) and decompressed to the payload.
        Assert.Equal(payload, reply.Payload);
        Assert.Equal("request gzip", reply.Text);
    }

    [Fact]
    public async Task DuplexGzipBothWays()
    {
        var payload = ByteString.CopyFrom(new byte[300_000]);
        using var call = new Echo.EchoClient(_peer.Invoker).Bidi(Compression.Gzip, TestData.In(10));
        for (int i = 0; i < 3; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = "z" + i, Payload = payload });
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal(payload, call.ResponseStream.Current.Payload);
            Assert.Equal("request gzip", call.ResponseStream.Current.Text);
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }

    [Fact]
    public async Task UncompressedRequestsStayUncompressed()
    {
        var reply = await new Echo.EchoClient(_peer.Invoker).UnaryAsync(new EchoRequest(), deadline: TestData.In(10));
        Assert.Equal("request identity", reply.Text);
    }

    /// <summary>Echoes the payload and says how the request came: its grpc-encoding header (which grpc-dotnet keeps out of RequestHeaders).</summary>
    private sealed class EncodingProbe : Echo.EchoBase
    {
        private static string Encoding(ServerCallContext context) =>
            "request " + (context.GetHttpContext().Request.Headers["grpc-encoding"].FirstOrDefault() ?? "identity");

        public override Task<EchoReply> Unary(EchoRequest request, ServerCallContext context) =>
            Task.FromResult(new EchoReply { Text = Encoding(context), Payload = request.Payload });

        public override async Task Bidi(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
        {
            await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
                await responseStream.WriteAsync(new EchoReply { Text = Encoding(context), Payload = request.Payload });
        }
    }
}
