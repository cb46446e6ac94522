using Grpc.HealthCheck;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Cluster.Transport;

/// <summary>
/// The ASP.NET Core builder every gRPC-serving role starts from: Grpc.AspNetCore with the project's limits and
/// interceptors, the standard health service and server reflection, one-line logs on stderr (stdout is the
/// process's own output, where roles print their READY line), Kestrel reading sockets into 64 KB blocks (what
/// 1 MB tensor frames need), and process signals left to the caller. Listeners and services are the caller's.
/// </summary>
public static class GrpcHostBuilder
{
    public static WebApplicationBuilder Create(GrpcServerOptions options)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(options.MinimumLogLevel);
        // The library logs every call at Information; our interceptor writes the one line per call, at Debug.
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Services.AddSingleton<IMemoryPoolFactory<byte>, LargeBlockMemoryPool.Factory>();
        // Ctrl-C and SIGTERM belong to whoever started the host (the CLI's token, a test's DisposeAsync): the
        // default console lifetime would stop the server behind its back.
        builder.Services.AddSingleton<IHostLifetime, CallerLifetime>();
        builder.Services.AddSingleton<CallMetrics>();
        builder.Services.AddSingleton<HealthServiceImpl>();
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = options.MaxReceiveMessageSize;
            grpc.MaxSendMessageSize = options.MaxSendMessageSize;
            grpc.ResponseCompressionAlgorithm = options.ResponseCompression;
            // Where the security issue's authentication goes: an interceptor registered here, ahead of telemetry.
            grpc.Interceptors.Add<CallTelemetryInterceptor>();
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

    private sealed class CallerLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
