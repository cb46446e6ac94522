using System.Net;
using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Services;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>A peer that answers with a plain HTTP error (a proxy, a wrong port) gives the status the spec's table says.</summary>
public class HttpStatusMappingTests
{
    [Theory]
    [InlineData(400, StatusCode.Internal)]
    [InlineData(401, StatusCode.Unauthenticated)]
    [InlineData(403, StatusCode.PermissionDenied)]
    [InlineData(404, StatusCode.Unimplemented)]
    [InlineData(429, StatusCode.Unavailable)]
    [InlineData(502, StatusCode.Unavailable)]
    [InlineData(503, StatusCode.Unavailable)]
    [InlineData(504, StatusCode.Unavailable)]
    [InlineData(500, StatusCode.Unknown)]
    public async Task NonOkHttpStatusMapsToGrpcStatus(int http, StatusCode expected)
    {
        Assert.Equal(expected, GrpcProtocol.FromHttpStatus((HttpStatusCode)http));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        await using var app = builder.Build();
        app.MapPost("/{**path}", (HttpContext c) => { c.Response.StatusCode = http; return Task.CompletedTask; });
        await app.StartAsync();
        using var channel = GrpcChannel.ForAddress(app.Urls.First(), new GrpcChannelOptions { Resilience = null });
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.Unary, new EchoRequest(), new CallOptions { Timeout = TimeSpan.FromSeconds(10) }));
        Assert.Equal(expected, e.StatusCode);
        Assert.Contains(http.ToString(), e.Status.Detail);
        await app.StopAsync();
    }

    [Fact]
    public async Task OkWithoutGrpcContentTypeIsUnknown()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        await using var app = builder.Build();
        app.MapPost("/{**path}", (HttpContext c) => c.Response.WriteAsync("<html>not grpc</html>"));
        await app.StartAsync();
        using var channel = GrpcChannel.ForAddress(app.Urls.First(), new GrpcChannelOptions { Resilience = null });
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.Unary, new EchoRequest(), new CallOptions { Timeout = TimeSpan.FromSeconds(10) }));
        Assert.Equal(StatusCode.Unknown, e.StatusCode);
        Assert.Contains("content-type", e.Status.Detail);
        await app.StopAsync();
    }
}
