using Cluster.Protos.V1;
using Cluster.Transport.Services;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.HealthCheck;
using Grpc.Reflection.V1Alpha;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Transport.Tests;

public class StackSmokeTests
{
    [Fact]
    public async Task EchoHealthReflectionAndPooledExchange()
    {
        await using var server = await GrpcServer.StartAsync(new GrpcServerOptions(),
            b => b.Services.AddSingleton(new EchoService()).AddSingleton(TensorStreamService.Echo()),
            app => { app.MapGrpcService<EchoService>(); app.MapGrpcService<TensorStreamService>(); });
        using var peer = PeerChannel.ForAddress(server.Address);
        var echo = new Echo.EchoClient(peer.Invoker);
        var reply = await echo.UnaryAsync(new EchoRequest { Text = "hi" });
        Assert.Equal("hi", reply.Text);

        var health = new Health.HealthClient(peer.Invoker);
        var roleHealth = new RoleHealth(server.Services.GetRequiredService<HealthServiceImpl>(), "cluster.v1.Echo");
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
        roleHealth.MarkServing();
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = "cluster.v1.Echo" })).Status);

        var reflection = new ServerReflection.ServerReflectionClient(peer.Invoker);
        using var call = reflection.ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(default));
        var names = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("cluster.v1.Echo", names);
        Assert.Contains("cluster.v1.TensorStream", names);
        Assert.Contains("grpc.health.v1.Health", names);

        var tensors = new TensorStream.TensorStreamClient(peer.Invoker);
        using var exchange = tensors.Exchange();
        using var frames = new PooledReader<TensorFrame>(exchange.ResponseStream, TensorFrameDecoder.Instance);
        var bytes = new byte[1 << 20];
        new Random(1).NextBytes(bytes);
        await exchange.RequestStream.WriteAsync(new TensorFrame { BatchId = 7, Payload = ByteString.CopyFrom(bytes) });
        Assert.True(await frames.MoveNext(default));
        var got = frames.Current;
        Assert.Equal(7ul, got.BatchId);
        Assert.True(got.Payload.Span.SequenceEqual(bytes));
        await exchange.RequestStream.CompleteAsync();
        Assert.False(await frames.MoveNext(default));
        Assert.True(got.Payload.IsEmpty);
    }
}
