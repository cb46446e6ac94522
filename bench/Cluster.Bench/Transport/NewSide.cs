using System.Diagnostics;
using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Services;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Bench.Transport;

/// <summary>
/// The stack on Grpc.AspNetCore and Grpc.Net.Client: Cluster.Transport's GrpcServer with TensorStreamService.Echo()
/// and EchoService, and a PeerChannel with the generated clients (pooled frames read through a PooledReader), in
/// this process. <see cref="ConnectAsync"/> gives the client alone, against another implementation's server.
/// </summary>
public sealed class NewSide : ITransportSide
{
    private readonly GrpcServer? _server;
    private readonly PeerChannel _peer;

    private NewSide(string name, GrpcServer? server, PeerChannel peer)
    {
        Name = name;
        _server = server;
        _peer = peer;
    }

    public string Name { get; }
    /// <summary>Where the server listens (http://127.0.0.1:port), or the foreign server's address for a client alone.</summary>
    public Uri Address => _peer.Address;

    public static async Task<NewSide> StartAsync(int maxMessageSize)
    {
        var server = await GrpcServer.StartAsync(new GrpcServerOptions { MaxReceiveMessageSize = maxMessageSize },
            b => b.Services.AddSingleton(new EchoService()).AddSingleton(TensorStreamService.Echo()),
            app => { app.MapGrpcService<EchoService>(); app.MapGrpcService<TensorStreamService>(); });
        return new NewSide("new (Grpc.AspNetCore)", server, Connect(server.Address, maxMessageSize));
    }

    /// <summary>The new client alone, against a server this side does not own.</summary>
    public static NewSide ConnectTo(string name, Uri address, int maxMessageSize) => new(name, null, Connect(address, maxMessageSize));

    private static PeerChannel Connect(Uri address, int maxMessageSize) =>
        PeerChannel.ForAddress(address, new GrpcClientOptions { MaxReceiveMessageSize = maxMessageSize, Resilience = null });

    public async Task<TransportResult> BidiAsync(int frameBytes, double seconds)
    {
        using var frame = new BenchFrame(frameBytes);
        using var call = new TensorStream.TensorStreamClient(_peer.Invoker).Exchange();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var sw = Stopwatch.StartNew();
        var writer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested) await call.RequestStream.WriteAsync(frame.Frame);
            await call.RequestStream.CompleteAsync();
        });
        long messages = 0, bytes = 0;
        using (var frames = new PooledReader<TensorFrame>(call.ResponseStream, TensorFrameDecoder.Instance))
            while (await frames.MoveNext(CancellationToken.None))
            {
                messages++;
                bytes += frames.Current.Payload.Length;
            }
        double elapsed = sw.Elapsed.TotalSeconds;
        await writer;
        return new TransportResult(messages, bytes, elapsed);
    }

    public async Task<TransportResult> UnaryAsync(int concurrency, double seconds)
    {
        var client = new Echo.EchoClient(_peer.Invoker);
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
                    await client.UnaryAsync(request);
                    Interlocked.Increment(ref calls);
                }
            });
        await Task.WhenAll(workers);
        return new TransportResult(calls, calls * 16, sw.Elapsed.TotalSeconds);
    }

    public async ValueTask DisposeAsync()
    {
        _peer.Dispose();
        if (_server is not null) await _server.DisposeAsync();
    }
}
