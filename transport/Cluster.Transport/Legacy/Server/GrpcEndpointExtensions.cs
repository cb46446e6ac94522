using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.Transport.Legacy;

/// <summary>How an ASP.NET Core app hosts gRPC services: map them, and set Kestrel up for long-lived HTTP/2 streams.</summary>
public static class GrpcEndpointExtensions
{
    public static IEndpointRouteBuilder MapGrpcService(this IEndpointRouteBuilder endpoints, IGrpcService service, GrpcServerOptions? options = null)
    {
        var logger = endpoints.ServiceProvider.GetService<ILoggerFactory>()?.CreateLogger("Cluster.Transport.Server") ?? NullLogger.Instance;
        service.Bind(new ServiceBinder(endpoints, options ?? new GrpcServerOptions(), logger));
        return endpoints;
    }

    /// <summary>
    /// Answers gRPC calls to methods nobody mapped with UNIMPLEMENTED (as a trailers-only response, HTTP 200).
    /// Routes of other mapped endpoints win, since literal paths take precedence over this pattern.
    /// </summary>
    public static IEndpointRouteBuilder MapGrpcUnimplemented(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/{service}/{method}", (HttpContext http) =>
        {
            if (!GrpcProtocol.IsGrpcContentType(http.Request.ContentType))
            {
                http.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            }
            if (ServerCallGate.TryAccept(http, out _))
                ServerCallGate.RejectTrailersOnly(http, new Status(StatusCode.Unimplemented, $"Method {http.Request.Path} is not implemented"));
            return Task.CompletedTask;
        });
        return endpoints;
    }

    /// <summary>
    /// Flow-control windows large enough that a 1 MB message never waits for a WINDOW_UPDATE round trip, and room
    /// for many concurrent long-lived streams per connection.
    /// </summary>
    public static void ConfigureGrpcLimits(this KestrelServerOptions kestrel)
    {
        kestrel.AddServerHeader = false;
        kestrel.Limits.MaxRequestBodySize = null;
        kestrel.Limits.MinRequestBodyDataRate = null;
        kestrel.Limits.MinResponseDataRate = null;
        // Room for several 1 MB messages in flight per connection before the socket loop or a writer waits.
        kestrel.Limits.MaxRequestBufferSize = 16 * 1024 * 1024;
        kestrel.Limits.MaxResponseBufferSize = 4 * 1024 * 1024;
        kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
        kestrel.Limits.Http2.InitialConnectionWindowSize = 8 * 1024 * 1024;
        kestrel.Limits.Http2.InitialStreamWindowSize = 4 * 1024 * 1024;
        kestrel.Limits.Http2.MaxFrameSize = 64 * 1024;
        kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(60);
        kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);
    }

    /// <summary>Cleartext listeners speak HTTP/2 only (prior knowledge); TLS listeners offer h2 and http/1.1 by ALPN.</summary>
    public static void UseGrpcProtocols(this ListenOptions listen, System.Security.Cryptography.X509Certificates.X509Certificate2? certificate)
    {
        if (certificate is null)
        {
            listen.Protocols = HttpProtocols.Http2;
            return;
        }
        listen.Protocols = HttpProtocols.Http1AndHttp2;
        listen.UseHttps(certificate);
    }
}
