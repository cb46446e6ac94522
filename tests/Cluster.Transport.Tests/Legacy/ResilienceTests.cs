using Cluster.Transport.Legacy;
using Cluster.Protos.V1;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>Polly pipelines on unary calls: retry only idempotent methods on UNAVAILABLE, per-attempt timeout, circuit breaker.</summary>
public class ResilienceTests : IAsyncLifetime
{
    private static readonly Method<EchoRequest, EchoReply> Idempotent = new(MethodType.Unary, "test.Flaky", "Idempotent", EchoRequest.Parser, EchoReply.Parser, idempotent: true);
    private static readonly Method<EchoRequest, EchoReply> NotIdempotent = new(MethodType.Unary, "test.Flaky", "NotIdempotent", EchoRequest.Parser, EchoReply.Parser);
    private static readonly Method<EchoRequest, EchoReply> Stream = new(MethodType.ServerStreaming, "test.Flaky", "Stream", EchoRequest.Parser, EchoReply.Parser);

    private readonly Flaky _flaky = new();
    private GrpcServer _server = null!;

    public async Task InitializeAsync() => _server = await GrpcServer.StartAsync(new GrpcServerOptions(), _flaky);
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private GrpcChannel Channel(GrpcResilienceOptions options) =>
        GrpcChannel.ForAddress(_server.Address, new GrpcChannelOptions { Resilience = options });

    [Fact]
    public async Task IdempotentCallIsRetriedOnUnavailableUntilItSucceeds()
    {
        using var channel = Channel(new GrpcResilienceOptions { MaxRetries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(5) });
        _flaky.FailuresLeft = 2;
        var reply = await channel.UnaryAsync(Idempotent, new EchoRequest { Text = "ok" });
        Assert.Equal("ok", reply.Text);
        Assert.Equal(3, _flaky.Calls);
    }

    [Fact]
    public async Task RetriesStopAtTheLimit()
    {
        using var channel = Channel(new GrpcResilienceOptions { MaxRetries = 2, RetryBaseDelay = TimeSpan.FromMilliseconds(5) });
        _flaky.FailuresLeft = 100;
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(Idempotent, new EchoRequest()));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Equal(3, _flaky.Calls);
    }

    [Fact]
    public async Task NonIdempotentAndStreamingCallsAreNotRetried()
    {
        using var channel = Channel(new GrpcResilienceOptions { MaxRetries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(5) });
        _flaky.FailuresLeft = 100;
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(NotIdempotent, new EchoRequest()));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Equal(1, _flaky.Calls);

        using var call = channel.ServerStreaming(Stream, new EchoRequest());
        var s = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Unavailable, s.StatusCode);
        Assert.Equal(2, _flaky.Calls);
    }

    [Fact]
    public async Task OtherStatusesAreNotRetried()
    {
        using var channel = Channel(new GrpcResilienceOptions { MaxRetries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(5) });
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(Idempotent, new EchoRequest { FailCode = (int)StatusCode.InvalidArgument }));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Equal(1, _flaky.Calls);
    }

    [Fact]
    public async Task AttemptTimeoutIsDeadlineExceeded()
    {
        using var channel = Channel(new GrpcResilienceOptions { MaxRetries = 0, AttemptTimeout = TimeSpan.FromMilliseconds(150) });
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(Idempotent, new EchoRequest { DelayMs = 10_000 }));
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
    }

    [Fact]
    public async Task CircuitOpensAfterRepeatedUnavailableAndFailsFast()
    {
        using var channel = Channel(new GrpcResilienceOptions
        {
            MaxRetries = 0,
            BreakerMinimumThroughput = 4,
            BreakerFailureRatio = 0.5,
            BreakerBreakDuration = TimeSpan.FromSeconds(30),
        });
        _flaky.FailuresLeft = 100;
        for (int i = 0; i < 4; i++)
            await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(NotIdempotent, new EchoRequest()));
        Assert.Equal(4, _flaky.Calls);
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(Idempotent, new EchoRequest()));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("Circuit open", e.Status.Detail);
        Assert.Equal(4, _flaky.Calls);
    }

    /// <summary>Fails with UNAVAILABLE while FailuresLeft > 0; otherwise behaves like the echo service.</summary>
    private sealed class Flaky : IGrpcService
    {
        private int _calls;
        public int FailuresLeft;
        public int Calls => Volatile.Read(ref _calls);

        public void Bind(ServiceBinder binder)
        {
            binder.Unary(Idempotent, HandleAsync);
            binder.Unary(NotIdempotent, HandleAsync);
            binder.ServerStreaming(Stream, async (request, responses, context) =>
                await responses.WriteAsync(await HandleAsync(request, context)));
        }

        private async Task<EchoReply> HandleAsync(EchoRequest request, ServerCallContext context)
        {
            Interlocked.Increment(ref _calls);
            if (Interlocked.Decrement(ref FailuresLeft) >= 0) throw new RpcException(StatusCode.Unavailable, "warming up");
            if (request.FailCode != 0) throw new RpcException((StatusCode)request.FailCode, "asked to fail");
            if (request.DelayMs > 0) await Task.Delay(request.DelayMs, context.CancellationToken);
            return new EchoReply { Text = request.Text };
        }
    }
}
