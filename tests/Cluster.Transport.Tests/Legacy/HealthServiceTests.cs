using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Health;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Transport.Legacy.Tests;

public class HealthServiceTests
{
    [Fact]
    public async Task ShuttingDownMarksEveryServiceNotServingAndWatchersSeeIt()
    {
        var health = new HealthService();
        health.SetStatus("cluster.v1.TensorStream", ServingStatus.Serving);
        await using var server = await GrpcServer.StartAsync(new GrpcServerOptions(), health);
        using var channel = GrpcChannel.ForAddress(server.Address);
        var client = new HealthClient(channel);
        var options = new CallOptions { Timeout = TimeSpan.FromSeconds(10) };
        using var watch = client.Watch("cluster.v1.TensorStream", options);
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.Serving, watch.ResponseStream.Current.Status);

        health.SetAllNotServing();
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.NotServing, watch.ResponseStream.Current.Status);
        Assert.Equal(ServingStatus.NotServing, (await client.CheckAsync("", options)).Status);
        Assert.Equal(ServingStatus.NotServing, (await client.CheckAsync("cluster.v1.TensorStream", options)).Status);
    }

    [Fact]
    public async Task RepeatedStatusesAreSentOnce()
    {
        var health = new HealthService();
        await using var server = await GrpcServer.StartAsync(new GrpcServerOptions(), health);
        using var channel = GrpcChannel.ForAddress(server.Address);
        using var watch = new HealthClient(channel).Watch("", new CallOptions { Timeout = TimeSpan.FromSeconds(10) });
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.Serving, watch.ResponseStream.Current.Status);
        health.SetStatus("", ServingStatus.Serving);
        health.SetStatus("", ServingStatus.NotServing);
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(ServingStatus.NotServing, watch.ResponseStream.Current.Status);
    }
}
