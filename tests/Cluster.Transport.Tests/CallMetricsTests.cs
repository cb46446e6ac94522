using Cluster.Protos.V1;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Transport.Tests;

/// <summary>CallTelemetryInterceptor counts every call per method and status code in CallMetrics, which /metrics writes as Prometheus text.</summary>
public class CallMetricsTests : IAsyncLifetime
{
    private GrpcServer _server = null!;
    private PeerChannel _peer = null!;
    private CallMetrics _metrics = null!;

    public async Task InitializeAsync()
    {
        _server = await TestServer.StartAsync(new GrpcServerOptions());
        _peer = PeerChannel.ForAddress(_server.Address, new GrpcClientOptions { Resilience = null });
        _metrics = _server.Services.GetRequiredService<CallMetrics>();
    }

    public async Task DisposeAsync()
    {
        _peer.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task CallsAreCountedPerMethodAndStatus()
    {
        var echo = new Echo.EchoClient(_peer.Invoker);
        for (int i = 0; i < 3; i++) await echo.UnaryAsync(new EchoRequest { Text = "ok" }, deadline: TestData.In(10));
        await Assert.ThrowsAsync<RpcException>(() => echo.UnaryAsync(new EchoRequest { FailCode = (int)StatusCode.NotFound }, deadline: TestData.In(10)).ResponseAsync);
        using (var call = echo.ServerStream(new EchoRequest { Count = 2 }, deadline: TestData.In(10)))
            while (await call.ResponseStream.MoveNext()) { }

        // The interceptor records before the status is written, so the client's having it means the count is in.
        Assert.Equal(3, _metrics.Count(TestServer.UnaryMethod, StatusCode.OK));
        Assert.Equal(1, _metrics.Count(TestServer.UnaryMethod, StatusCode.NotFound));
        Assert.Equal(1, _metrics.Count(TestServer.ServerStreamMethod, StatusCode.OK));
        Assert.Equal(0, _metrics.Count(TestServer.ServerStreamMethod, StatusCode.NotFound));

        var text = new StringWriter();
        _metrics.WritePrometheus(text);
        string prometheus = text.ToString();
        Assert.Contains("# TYPE cluster_grpc_server_handled_total counter", prometheus);
        Assert.Contains("cluster_grpc_server_handled_total{grpc_method=\"/cluster.v1.Echo/Unary\",grpc_code=\"OK\"} 3\n", prometheus.ReplaceLineEndings("\n"));
        Assert.Contains("cluster_grpc_server_handled_total{grpc_method=\"/cluster.v1.Echo/Unary\",grpc_code=\"NotFound\"} 1\n", prometheus.ReplaceLineEndings("\n"));
        Assert.Contains("cluster_grpc_server_handled_total{grpc_method=\"/cluster.v1.Echo/ServerStream\",grpc_code=\"OK\"} 1\n", prometheus.ReplaceLineEndings("\n"));
        Assert.Contains("cluster_grpc_server_handling_seconds_sum{grpc_method=\"/cluster.v1.Echo/Unary\",grpc_code=\"OK\"} ", prometheus);
    }

    /// <summary>
    /// The client resets the stream when its deadline passes, usually before the server's own timer (started when the
    /// request arrived) fires: the server then sees the client go, CANCELLED; when its timer wins, DEADLINE_EXCEEDED.
    /// Either way the call is counted once, and not as OK or UNKNOWN.
    /// </summary>
    [Fact]
    public async Task AHandlerCutOffByTheDeadlineIsCountedAsCancelledOrDeadlineExceeded()
    {
        var echo = new Echo.EchoClient(_peer.Invoker);
        await echo.UnaryAsync(new EchoRequest(), deadline: TestData.In(10));
        await Assert.ThrowsAsync<RpcException>(() => echo.UnaryAsync(new EchoRequest { DelayMs = 30_000 }, deadline: DateTime.UtcNow.AddSeconds(2)).ResponseAsync);
        // The client gives up on its own clock; the server's handler ends a moment later.
        var until = DateTime.UtcNow.AddSeconds(20);
        long CutOff() => _metrics.Count(TestServer.UnaryMethod, StatusCode.DeadlineExceeded) + _metrics.Count(TestServer.UnaryMethod, StatusCode.Cancelled);
        while (CutOff() == 0 && DateTime.UtcNow < until) await Task.Delay(20);
        Assert.Equal(1, CutOff());
        Assert.Equal(1, _metrics.Count(TestServer.UnaryMethod, StatusCode.OK));
        Assert.Equal(0, _metrics.Count(TestServer.UnaryMethod, StatusCode.Unknown));
    }
}
