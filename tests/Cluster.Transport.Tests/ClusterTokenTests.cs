using Cluster.Protos.V1;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.HealthCheck;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Transport.Tests;

/// <summary>
/// Inter-node trust: a server with a cluster token refuses every call of every kind that lacks it or carries another
/// one (UNAUTHENTICATED, naming the method), serves callers that present it, and leaves health, reflection and the
/// services it names open.
/// </summary>
public class ClusterTokenTests : IAsyncLifetime
{
    private readonly ClusterToken _token = ClusterToken.Generate();
    private GrpcServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await TestServer.StartAsync(new GrpcServerOptions { ClusterToken = _token, OpenServices = ["cluster.v1.TensorStream"] });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private PeerChannel Peer(ClusterToken? token) => PeerChannel.ForAddress(_server.Address, new GrpcClientOptions { Resilience = null, ClusterToken = token });

    [Fact]
    public async Task EveryCallTypeWithTheTokenIsServed()
    {
        using var peer = Peer(_token);
        var echo = new Echo.EchoClient(peer.Invoker);
        Assert.Equal("hi", (await echo.UnaryAsync(new EchoRequest { Text = "hi" }, deadline: TestData.In(10))).Text);
        using var server = echo.ServerStream(new EchoRequest { Count = 2 }, deadline: TestData.In(10));
        int n = 0;
        while (await server.ResponseStream.MoveNext(CancellationToken.None)) n++;
        Assert.Equal(2, n);
        using var bidi = echo.Bidi(deadline: TestData.In(10));
        await bidi.RequestStream.WriteAsync(new EchoRequest { Text = "x" });
        await bidi.RequestStream.CompleteAsync();
        Assert.True(await bidi.ResponseStream.MoveNext(CancellationToken.None));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EveryCallTypeWithoutTheTokenIsUnauthenticated(bool wrongToken)
    {
        using var peer = Peer(wrongToken ? ClusterToken.Generate() : null);
        var echo = new Echo.EchoClient(peer.Invoker);
        string expected = wrongToken ? "is not this cluster's token" : "has no 'cluster-token' metadata";

        var unary = await Assert.ThrowsAsync<RpcException>(() => echo.UnaryAsync(new EchoRequest { Text = "hi" }, deadline: TestData.In(10)).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, unary.StatusCode);
        Assert.Contains("/cluster.v1.Echo/Unary", unary.Status.Detail);
        Assert.Contains(expected, unary.Status.Detail);

        using var server = echo.ServerStream(new EchoRequest { Count = 2 }, deadline: TestData.In(10));
        var e2 = await Assert.ThrowsAsync<RpcException>(() => server.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Unauthenticated, e2.StatusCode);

        using var bidi = echo.Bidi(deadline: TestData.In(10));
        var e3 = await Assert.ThrowsAsync<RpcException>(() => bidi.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Unauthenticated, e3.StatusCode);
    }

    [Fact]
    public async Task HealthReflectionAndNamedServicesStayOpen()
    {
        _server.Services.GetRequiredService<HealthServiceImpl>().SetStatus("", HealthCheckResponse.Types.ServingStatus.Serving);
        using var peer = Peer(null);
        var health = new Health.HealthClient(peer.Invoker);
        var reply = await health.CheckAsync(new HealthCheckRequest(), deadline: TestData.In(10));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);

        var reflection = new Grpc.Reflection.V1Alpha.ServerReflection.ServerReflectionClient(peer.Invoker);
        using var call = reflection.ServerReflectionInfo(deadline: TestData.In(10));
        await call.RequestStream.WriteAsync(new Grpc.Reflection.V1Alpha.ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));

        // Named open: the tensor stream answers without a token.
        var tensors = new TensorStream.TensorStreamClient(peer.Invoker);
        using var stream = tensors.Exchange(deadline: TestData.In(10));
        await stream.RequestStream.CompleteAsync();
        Assert.False(await stream.ResponseStream.MoveNext(CancellationToken.None));
    }

    [Fact]
    public void TokensAreCheckedForShapeAndCompareExactly()
    {
        var token = ClusterToken.Generate();
        Assert.True(token.Value.Length >= 40);
        Assert.True(token.Matches(token.Value));
        Assert.False(token.Matches(token.Value[..^1] + (token.Value[^1] == 'a' ? 'b' : 'a')));
        Assert.False(token.Matches(token.Value + "x"));
        Assert.False(token.Matches(null));
        Assert.Equal(token.Value, ClusterToken.Parse("  " + token.Value + "\n", "test").Value);
        Assert.Contains("at least 16 characters", Assert.Throws<FormatException>(() => ClusterToken.Parse("short", "token.txt")).Message);
        Assert.Contains("visible ASCII", Assert.Throws<FormatException>(() => ClusterToken.Parse("0123456789 abcdefgh", "token.txt")).Message);
        Assert.DoesNotContain(token.Value, token.ToString());
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void TheTokenFileIsTheOwnersOnly()
    {
        using var dir = new TempDir();
        string file = Path.Combine(dir.Path, "token");
        var token = ClusterToken.Generate();
        token.Save(file);
        Assert.Equal(token.Value, ClusterToken.Load(file)!.Value);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        Assert.Throws<FileNotFoundException>(() => ClusterToken.Load(Path.Combine(dir.Path, "missing")));
    }
}
