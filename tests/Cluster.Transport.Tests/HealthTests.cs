using Grpc.Core;
using Grpc.Health.V1;
using Grpc.HealthCheck;
using Microsoft.Extensions.DependencyInjection;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Transport.Tests;

/// <summary>grpc.health.v1 as a role answers it through RoleHealth: NOT_SERVING until ready, per service, watchers see every change.</summary>
public class HealthTests : IAsyncLifetime
{
    private GrpcServer _server = null!;
    private PeerChannel _peer = null!;
    private RoleHealth _role = null!;
    private Health.HealthClient _health = null!;

    public async Task InitializeAsync()
    {
        _server = await TestServer.StartAsync(new GrpcServerOptions());
        _role = new RoleHealth(_server.Services.GetRequiredService<HealthServiceImpl>(), "cluster.v1.Echo", "cluster.v1.TensorStream");
        _peer = PeerChannel.ForAddress(_server.Address);
        _health = new Health.HealthClient(_peer.Invoker);
    }

    public async Task DisposeAsync()
    {
        _peer.Dispose();
        await _server.DisposeAsync();
    }

    private async Task<ServingStatus> Check(string service) => (await _health.CheckAsync(new HealthCheckRequest { Service = service }, deadline: TestData.In(10))).Status;

    [Fact]
    public async Task NotServingUntilMarkedServingThenEveryServiceIs()
    {
        foreach (string service in new[] { "", "cluster.v1.Echo", "cluster.v1.TensorStream" })
            Assert.Equal(ServingStatus.NotServing, await Check(service));
        _role.MarkServing();
        foreach (string service in new[] { "", "cluster.v1.Echo", "cluster.v1.TensorStream" })
            Assert.Equal(ServingStatus.Serving, await Check(service));
    }

    [Fact]
    public async Task StatusesArePerService()
    {
        _role.MarkServing();
        _server.Services.GetRequiredService<HealthServiceImpl>().SetStatus("cluster.v1.TensorStream", ServingStatus.NotServing);
        Assert.Equal(ServingStatus.Serving, await Check(""));
        Assert.Equal(ServingStatus.Serving, await Check("cluster.v1.Echo"));
        Assert.Equal(ServingStatus.NotServing, await Check("cluster.v1.TensorStream"));
    }

    [Fact]
    public async Task CheckOfAnUnknownServiceIsNotFound()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => Check("no.such.Service"));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
    }

    [Fact]
    public async Task WatchSeesServingThenShutdown()
    {
        using var watch = _health.Watch(new HealthCheckRequest { Service = "cluster.v1.Echo" }, deadline: TestData.In(30));
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.NotServing, watch.ResponseStream.Current.Status);
        _role.MarkServing();
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.Serving, watch.ResponseStream.Current.Status);
        _role.MarkNotServing();
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.NotServing, watch.ResponseStream.Current.Status);
        Assert.Equal(ServingStatus.NotServing, await Check(""));
    }

    [Fact]
    public async Task ARepeatedStatusIsNotSentAgain()
    {
        _role.MarkServing();
        using var watch = _health.Watch(new HealthCheckRequest { Service = "" }, deadline: TestData.In(30));
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.Serving, watch.ResponseStream.Current.Status);
        _role.MarkServing();
        _role.MarkNotServing();
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.NotServing, watch.ResponseStream.Current.Status);
    }

    [Fact]
    public async Task WatchOfAnUnknownServiceSeesItAppear()
    {
        var health = _server.Services.GetRequiredService<HealthServiceImpl>();
        using var watch = _health.Watch(new HealthCheckRequest { Service = "cluster.v1.Watched" }, deadline: TestData.In(30));
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.ServiceUnknown, watch.ResponseStream.Current.Status);
        health.SetStatus("cluster.v1.Watched", ServingStatus.Serving);
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.Serving, watch.ResponseStream.Current.Status);
    }
}
