using Grpc.HealthCheck;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Transport;

/// <summary>
/// The builder every gRPC-serving role starts from (<see cref="RoleHostBuilder"/> plus Grpc.AspNetCore with the
/// project's limits and interceptors, the standard health service, server reflection and Kestrel's limits for
/// long-lived streams). Listeners and the role's own services are the caller's.
/// </summary>
public static class GrpcHostBuilder
{
    public static WebApplicationBuilder Create(GrpcServerOptions options)
    {
        var builder = RoleHostBuilder.Create(options.MinimumLogLevel);
        // The library logs every call at Information; CallTelemetryInterceptor writes the one line per call, at Debug.
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Services.AddSingleton<CallMetrics>();
        builder.Services.AddSingleton<HealthServiceImpl>();
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = options.MaxReceiveMessageSize;
            grpc.MaxSendMessageSize = options.MaxSendMessageSize;
            grpc.ResponseCompressionAlgorithm = options.ResponseCompression;
            // Telemetry first, so that refused calls are counted and logged too.
            grpc.Interceptors.Add<CallTelemetryInterceptor>();
            if (options.ClusterToken is { } token) grpc.Interceptors.Add<ClusterTokenInterceptor>(token, options.OpenServices);
        });
        builder.Services.AddGrpcReflection();
        builder.WebHost.ConfigureKestrel(k => k.ConfigureGrpcLimits());
        return builder;
    }

    /// <summary>Maps what every role serves besides its own services: grpc.health.v1.Health and server reflection.</summary>
    public static IEndpointRouteBuilder MapGrpcInfrastructure(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGrpcService<HealthServiceImpl>();
        endpoints.MapGrpcReflectionService();
        return endpoints;
    }
}
