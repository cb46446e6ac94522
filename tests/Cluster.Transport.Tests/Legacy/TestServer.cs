using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Health;
using Cluster.Transport.Legacy.Services;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>Our server with the echo, health and tensor services on a free loopback port, shared by a test class.</summary>
public sealed class TestServer : IAsyncLifetime
{
    public EchoService Echo { get; } = new();
    public HealthService Health { get; } = new();
    public GrpcServer Server { get; private set; } = null!;
    public GrpcChannel Channel { get; private set; } = null!;
    public string Target => $"127.0.0.1:{Server.Port}";

    /// <summary>Every cancellation a handler saw, for failure messages.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Cancellations { get; } = new();

    public async Task InitializeAsync()
    {
        Echo.CallCancelled += Cancellations.Enqueue;
        Health.SetStatus(EchoMethods.ServiceName, ServingStatus.NotServing);
        Server = await GrpcServer.StartAsync(new GrpcServerOptions(), Echo, Health, TensorStreamService.Echo());
        Channel = GrpcChannel.ForAddress(Server.Address);
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        await Server.DisposeAsync();
    }

    /// <summary>Completes with the method name of the next call whose handler sees a cancellation.</summary>
    public Task<string> NextCancellation(string method)
    {
        var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Handler(string m)
        {
            if (m != method) return;
            tcs.TrySetResult(m);
            Echo.CallCancelled -= Handler;
        }
        Echo.CallCancelled += Handler;
        return tcs.Task;
    }
}
