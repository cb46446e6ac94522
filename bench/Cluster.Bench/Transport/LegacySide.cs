using System.Diagnostics;
using Cluster.Protos.V1;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Services;
using Google.Protobuf;

namespace Cluster.Bench.Transport;

/// <summary>The hand-written layer (Cluster.Transport.Legacy): its GrpcServer and its GrpcChannel, in this process.</summary>
public sealed class LegacySide : ITransportSide
{
    private readonly GrpcServer _server;
    private readonly GrpcChannel _channel;

    private LegacySide(GrpcServer server, GrpcChannel channel)
    {
        _server = server;
        _channel = channel;
    }

    public string Name => "old (Legacy)";

    public static async Task<LegacySide> StartAsync(int maxMessageSize)
    {
        var server = await GrpcServer.StartAsync(new GrpcServerOptions { MaxReceiveMessageSize = maxMessageSize }, TensorStreamService.Echo(), new EchoService());
        var channel = GrpcChannel.ForAddress(server.Address, new GrpcChannelOptions { MaxReceiveMessageSize = maxMessageSize, Resilience = null });
        return new LegacySide(server, channel);
    }

    public async Task<TransportResult> BidiAsync(int frameBytes, double seconds)
    {
        using var frame = new BenchFrame(frameBytes);
        using var call = new TensorStreamClient(_channel).Exchange();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var sw = Stopwatch.StartNew();
        var writer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested) await call.RequestStream.WriteAsync(frame.Frame);
            await call.RequestStream.CompleteAsync();
        });
        long messages = 0, bytes = 0;
        // The legacy call decodes frames pooled and releases each one when it reads the next.
        while (await call.ResponseStream.MoveNext())
        {
            messages++;
            bytes += call.ResponseStream.Current.Payload.Length;
        }
        double elapsed = sw.Elapsed.TotalSeconds;
        await writer;
        return new TransportResult(messages, bytes, elapsed);
    }

    public async Task<TransportResult> UnaryAsync(int concurrency, double seconds)
    {
        var request = new EchoRequest { Text = "u", Payload = ByteString.CopyFrom(new byte[16]) };
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        long calls = 0;
        var sw = Stopwatch.StartNew();
        var workers = new Task[concurrency];
        for (int i = 0; i < workers.Length; i++)
            workers[i] = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    await _channel.UnaryAsync(EchoMethods.Unary, request);
                    Interlocked.Increment(ref calls);
                }
            });
        await Task.WhenAll(workers);
        return new TransportResult(calls, calls * 16, sw.Elapsed.TotalSeconds);
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await _server.DisposeAsync();
    }
}
