using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Cluster.Transport;

/// <summary>
/// The ASP.NET Core builder every role process starts from, gRPC or not: one-line logs on stderr (stdout is the
/// process's own output, where roles print their READY line), Kestrel reading sockets into 64 KB blocks (what
/// 1 MB tensor frames need), and process signals left to the caller.
/// </summary>
public static class RoleHostBuilder
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
