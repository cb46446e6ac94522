using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Cluster.Transport.Legacy;

/// <summary>
/// The ASP.NET Core builder every process that serves gRPC starts from: one-line logs on stderr (stdout is the
/// process's own output, where roles print their READY line), Kestrel reading sockets into 64 KB blocks (what
/// 1 MB tensor frames need), and process signals left to the caller. Listeners are the caller's to add.
/// </summary>
public static class GrpcHostBuilder
{
    public static WebApplicationBuilder Create(LogLevel minimumLevel)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(minimumLevel);
        builder.Services.AddSingleton<IMemoryPoolFactory<byte>, LargeBlockMemoryPool.Factory>();
        // Ctrl-C and SIGTERM belong to whoever started the host (the CLI's token, a test's DisposeAsync): the
        // default console lifetime would stop the server behind its back.
        builder.Services.AddSingleton<IHostLifetime, CallerLifetime>();
        return builder;
    }

    private sealed class CallerLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
