using System.Collections.Concurrent;
using Cluster.Protos.V1;
using Cluster.Transport.Services;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.HealthCheck;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Transport.Tests;

/// <summary>
/// The new stack's server with the echo, tensor (echoing) and health services on a free loopback port, and our
/// client to it; one per test class. Health starts NOT_SERVING for "", cluster.v1.Echo and cluster.v1.TensorStream
/// (the role's rule), so tests that need SERVING call <see cref="RoleHealth"/>.MarkServing themselves.
/// </summary>
public sealed class TestServer : IAsyncLifetime
{
    public const string UnaryMethod = "/cluster.v1.Echo/Unary";
    public const string ServerStreamMethod = "/cluster.v1.Echo/ServerStream";
    public const string ClientStreamMethod = "/cluster.v1.Echo/ClientStream";
    public const string BidiMethod = "/cluster.v1.Echo/Bidi";

    public EchoService EchoService { get; } = new();
    public GrpcServer Server { get; private set; } = null!;
    public RoleHealth RoleHealth { get; private set; } = null!;
    public HealthServiceImpl HealthService => Server.Services.GetRequiredService<HealthServiceImpl>();
    public CallMetrics Metrics => Server.Services.GetRequiredService<CallMetrics>();
    public PeerChannel Peer { get; private set; } = null!;
    public Echo.EchoClient Echo { get; private set; } = null!;
    public Health.HealthClient Health { get; private set; } = null!;
    public TensorStream.TensorStreamClient Tensors { get; private set; } = null!;
    /// <summary>host:port, as grpc-js takes a target.</summary>
    public string Target => $"127.0.0.1:{Server.Port}";

    /// <summary>Every cancellation a handler saw, for failure messages.</summary>
    public ConcurrentQueue<string> Cancellations { get; } = new();

    public async Task InitializeAsync()
    {
        EchoService.CallCancelled += Cancellations.Enqueue;
        Server = await StartAsync(new GrpcServerOptions(), EchoService);
        RoleHealth = new RoleHealth(HealthService, "cluster.v1.Echo", "cluster.v1.TensorStream");
        Peer = PeerChannel.ForAddress(Server.Address);
        Echo = new Echo.EchoClient(Peer.Invoker);
        Health = new Health.HealthClient(Peer.Invoker);
        Tensors = new TensorStream.TensorStreamClient(Peer.Invoker);
    }

    public async Task DisposeAsync()
    {
        Peer.Dispose();
        await Server.DisposeAsync();
    }

    /// <summary>A server of echo and the echoing tensor stream with the given options (and health and reflection, always there).</summary>
    public static Task<GrpcServer> StartAsync(GrpcServerOptions options, EchoService? echo = null, Action<WebApplicationBuilder>? configure = null) =>
        GrpcServer.StartAsync(options,
            b =>
            {
                b.Services.AddSingleton(echo ?? new EchoService()).AddSingleton(TensorStreamService.Echo());
                configure?.Invoke(b);
            },
            app =>
            {
                app.MapGrpcService<EchoService>();
                app.MapGrpcService<TensorStreamService>();
            });

    /// <summary>Completes with the method name of the next call of <paramref name="method"/> whose handler sees a cancellation.</summary>
    public Task<string> NextCancellation(string method)
    {
        var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Handler(string m)
        {
            if (m != method) return;
            tcs.TrySetResult(m);
            EchoService.CallCancelled -= Handler;
        }
        EchoService.CallCancelled += Handler;
        return tcs.Task;
    }

    /// <summary>A plain call succeeds: whatever the test did left the server serving.</summary>
    public async Task AssertStillServing()
    {
        var reply = await Echo.UnaryAsync(new EchoRequest { Text = "still here" }, deadline: TestData.In(10));
        Assert.Equal("still here", reply.Text);
    }
}
