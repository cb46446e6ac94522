using Cluster.Protos.V1;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Transport.Tests;

/// <summary>
/// Metadata both ways: request headers reach the handler, its response headers and trailers reach the client,
/// grpc-status-details-bin passes through untouched, and a handler may end a call by setting a status.
/// </summary>
public class MetadataTests : IAsyncLifetime
{
    private static readonly byte[] Details = [8, 3, 18, 4, 98, 97, 100, 33, 0, 255];

    private GrpcServer _server = null!;
    private PeerChannel _peer = null!;
    private Echo.EchoClient _echo = null!;

    public async Task InitializeAsync()
    {
        _server = await GrpcServer.StartAsync(new GrpcServerOptions(), b => b.Services.AddSingleton<Probe>(), app => app.MapGrpcService<Probe>());
        _peer = PeerChannel.ForAddress(_server.Address, new GrpcClientOptions { Resilience = null });
        _echo = new Echo.EchoClient(_peer.Invoker);
    }

    public async Task DisposeAsync()
    {
        _peer.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task CustomMetadataPassesThroughBothWays()
    {
        byte[] trace = [0, 9, 255];
        var headers = new Metadata { { "x-request-id", "abc-123" }, { "trace-bin", trace } };
        using var call = _echo.ServerStream(new EchoRequest { Count = 1 }, headers, TestData.In(10));
        var responseHeaders = await call.ResponseHeadersAsync;
        Assert.Equal("abc-123", responseHeaders.GetValue("x-echo-request-id"));
        Assert.Equal(trace, responseHeaders.GetValueBytes("x-echo-trace-bin"));
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal("abc-123", call.ResponseStream.Current.Text);
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal("done", call.GetTrailers().GetValue("x-trailer"));
    }

    [Fact]
    public async Task StatusDetailsBinaryPassesThrough()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => _echo.UnaryAsync(new EchoRequest { FailCode = 1 }, deadline: TestData.In(10)).ResponseAsync);
        Assert.Equal((StatusCode.InvalidArgument, "see details"), (e.StatusCode, e.Status.Detail));
        Assert.Equal(Details, e.Trailers.GetValueBytes("grpc-status-details-bin"));
    }

    [Fact]
    public async Task HandlerSetStatusEndsTheCallWithoutAMessage()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => _echo.UnaryAsync(new EchoRequest(), deadline: TestData.In(10)).ResponseAsync);
        Assert.Equal((StatusCode.NotFound, "nothing here"), (e.StatusCode, e.Status.Detail));
        Assert.Equal("v", e.Trailers.GetValue("x-trailer"));
    }

    private sealed class Probe : Echo.EchoBase
    {
        public override Task<EchoReply> Unary(EchoRequest request, ServerCallContext context)
        {
            if (request.FailCode != 0)
                throw new RpcException(new Status(StatusCode.InvalidArgument, "see details"), new Metadata { { "grpc-status-details-bin", Details } });
            context.Status = new Status(StatusCode.NotFound, "nothing here");
            context.ResponseTrailers.Add("x-trailer", "v");
            return Task.FromResult(new EchoReply());
        }

        public override async Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
        {
            string id = context.RequestHeaders.GetValue("x-request-id") ?? "";
            await context.WriteResponseHeadersAsync(new Metadata
            {
                { "x-echo-request-id", id },
                { "x-echo-trace-bin", context.RequestHeaders.GetValueBytes("trace-bin") ?? [] },
            });
            await responseStream.WriteAsync(new EchoReply { Text = id });
            context.ResponseTrailers.Add("x-trailer", "done");
        }
    }
}
