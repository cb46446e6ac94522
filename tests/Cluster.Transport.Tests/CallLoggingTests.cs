using System.Collections.Concurrent;
using Cluster.Protos.V1;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Transport.Tests;

/// <summary>The one line per call that CallTelemetryInterceptor writes: there at Debug, absent at the default level.</summary>
public class CallLoggingTests
{
    private const string Category = "Cluster.Transport.CallTelemetryInterceptor";

    [Fact]
    public async Task EachCallIsOneDebugLineWhenTheLevelIsDebug()
    {
        var lines = await Serve(LogLevel.Debug);
        var ours = lines.Where(l => l.Category == Category).ToList();
        Assert.Equal(2, ours.Count);
        Assert.All(ours, l => Assert.Equal(LogLevel.Debug, l.Level));
        var ok = Assert.Single(ours, l => l.Message.StartsWith($"{TestServer.UnaryMethod} OK ", StringComparison.Ordinal));
        Assert.Contains(" ms from ", ok.Message);
        Assert.Single(ours, l => l.Message.StartsWith($"{TestServer.UnaryMethod} NotFound ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task NothingIsWrittenAtTheDefaultLevel()
    {
        Assert.Equal(LogLevel.Warning, new GrpcServerOptions().MinimumLogLevel);
        var lines = await Serve(new GrpcServerOptions().MinimumLogLevel);
        Assert.DoesNotContain(lines, l => l.Category == Category);
    }

    /// <summary>Makes one good and one failing call to a server logging at <paramref name="level"/>; returns what was logged.</summary>
    private static async Task<List<(string Category, LogLevel Level, string Message)>> Serve(LogLevel level)
    {
        var capture = new Capture();
        await using (var server = await TestServer.StartAsync(new GrpcServerOptions { MinimumLogLevel = level }, configure: b => b.Logging.AddProvider(capture)))
        {
            using var peer = PeerChannel.ForAddress(server.Address);
            var echo = new Echo.EchoClient(peer.Invoker);
            await echo.UnaryAsync(new EchoRequest { Text = "logged" }, deadline: TestData.In(10));
            await Assert.ThrowsAsync<RpcException>(() => echo.UnaryAsync(new EchoRequest { FailCode = (int)StatusCode.NotFound }, deadline: TestData.In(10)).ResponseAsync);
        }
        return [.. capture.Lines];
    }

    private sealed class Capture : ILoggerProvider
    {
        public ConcurrentQueue<(string Category, LogLevel Level, string Message)> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose() { }

        private sealed class Logger(Capture owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Lines.Enqueue((category, logLevel, formatter(state, exception)));
        }
    }
}
