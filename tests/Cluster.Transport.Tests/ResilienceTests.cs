using Cluster.Protos.V1;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Transport.Tests;

/// <summary>
/// PeerChannel's Polly pipelines on unary calls: only methods in GrpcClientOptions.IdempotentMethods are retried, only
/// on UNAVAILABLE, up to the limit; streams never; a per-attempt timeout; a circuit breaker that fails fast.
/// </summary>
public class ResilienceTests : IAsyncLifetime
{
    private static readonly HashSet<string> UnaryIsIdempotent = ["/cluster.v1.Echo/Unary"];

    private readonly Flaky _flaky = new();
    private GrpcServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await GrpcServer.StartAsync(new GrpcServerOptions(), b => b.Services.AddSingleton(_flaky), app => app.MapGrpcService<Flaky>());

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private PeerChannel Channel(GrpcResilienceOptions options, IReadOnlySet<string>? idempotent = null) =>
        PeerChannel.ForAddress(_server.Address, new GrpcClientOptions { Resilience = options, IdempotentMethods = idempotent ?? UnaryIsIdempotent });

    private static Task<EchoReply> Unary(PeerChannel peer, EchoRequest request) =>
        new Echo.EchoClient(peer.Invoker).UnaryAsync(request, deadline: TestData.In(30)).ResponseAsync;

    [Fact]
    public async Task IdempotentCallIsRetriedOnUnavailableUntilItSucceeds()
    {
        using var peer = Channel(new GrpcResilienceOptions { MaxRetries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(5) });
        _flaky.FailuresLeft = 2;
        var reply = await Unary(peer, new EchoRequest { Text = "ok" });
        Assert.Equal("ok", reply.Text);
        Assert.Equal(3, _flaky.Calls);
    }

    [Fact]
    public async Task RetriesStopAtTheLimit()
    {
        using var peer = Channel(new GrpcResilienceOptions { MaxRetries = 2, RetryBaseDelay = TimeSpan.FromMilliseconds(5) });
        _flaky.FailuresLeft = 100;
        var e = await Assert.ThrowsAsync<RpcException>(() => Unary(peer, new EchoRequest()));
        Assert.Equal((StatusCode.Unavailable, "warming up"), (e.StatusCode, e.Status.Detail));
        Assert.Equal(3, _flaky.Calls);
    }

    [Fact]
    public async Task NonIdempotentCallsAreNotRetried()
    {
        using var peer = Channel(new GrpcResilienceOptions { MaxRetries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(5) }, idempotent: new HashSet<string>());
        _flaky.FailuresLeft = 100;
        var e = await Assert.ThrowsAsync<RpcException>(() => Unary(peer, new EchoRequest()));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Equal(1, _flaky.Calls);
    }

    [Fact]
    public async Task StreamingCallsAreNotRetriedEvenWhenListed()
    {
        using var peer = Channel(new GrpcResilienceOptions { MaxRetries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(5) },
            idempotent: new HashSet<string>(UnaryIsIdempotent) { "/cluster.v1.Echo/ServerStream" });
        _flaky.FailuresLeft = 100;
        using var call = new Echo.EchoClient(peer.Invoker).ServerStream(new EchoRequest(), deadline: TestData.In(30));
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Equal(1, _flaky.Calls);
    }

    [Fact]
    public async Task OtherStatusesAreNotRetried()
    {
        using var peer = Channel(new GrpcResilienceOptions { MaxRetries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(5) });
        var e = await Assert.ThrowsAsync<RpcException>(() => Unary(peer, new EchoRequest { FailCode = (int)StatusCode.InvalidArgument }));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Equal(1, _flaky.Calls);
    }

    [Fact]
    public async Task AttemptTimeoutIsDeadlineExceeded()
    {
        using var peer = Channel(new GrpcResilienceOptions { MaxRetries = 0, AttemptTimeout = TimeSpan.FromMilliseconds(300) });
        var e = await Assert.ThrowsAsync<RpcException>(() => Unary(peer, new EchoRequest { DelayMs = 30_000 }));
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.Contains("attempt timed out", e.Status.Detail);
    }

    [Fact]
    public async Task CircuitOpensAfterRepeatedUnavailableAndFailsFast()
    {
        using var peer = Channel(new GrpcResilienceOptions
        {
            MaxRetries = 0,
            BreakerMinimumThroughput = 4,
            BreakerFailureRatio = 0.5,
            BreakerBreakDuration = TimeSpan.FromSeconds(30),
        });
        _flaky.FailuresLeft = 100;
        for (int i = 0; i < 4; i++)
            Assert.Equal(StatusCode.Unavailable, (await Assert.ThrowsAsync<RpcException>(() => Unary(peer, new EchoRequest()))).StatusCode);
        Assert.Equal(4, _flaky.Calls);
        var e = await Assert.ThrowsAsync<RpcException>(() => Unary(peer, new EchoRequest()));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("circuit open", e.Status.Detail);
        // Failed fast: the server never saw the fifth call.
        Assert.Equal(4, _flaky.Calls);
    }

    /// <summary>Fails with UNAVAILABLE while FailuresLeft > 0; otherwise echoes, failing or waiting when asked to.</summary>
    private sealed class Flaky : Echo.EchoBase
    {
        private int _calls;
        public int FailuresLeft;
        public int Calls => Volatile.Read(ref _calls);

        public override async Task<EchoReply> Unary(EchoRequest request, ServerCallContext context)
        {
            Interlocked.Increment(ref _calls);
            if (Interlocked.Decrement(ref FailuresLeft) >= 0) throw new RpcException(new Status(StatusCode.Unavailable, "warming up"));
            if (request.FailCode != 0) throw new RpcException(new Status((StatusCode)request.FailCode, "asked to fail"));
            if (request.DelayMs > 0) await Task.Delay(request.DelayMs, context.CancellationToken);
            return new EchoReply { Text = request.Text };
        }

        public override async Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context) =>
            await responseStream.WriteAsync(await Unary(request, context));
    }
}
