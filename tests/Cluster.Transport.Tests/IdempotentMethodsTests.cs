namespace Cluster.Transport.Tests;

/// <summary>The default retry set comes from the protos' idempotency_level: reads are in it, a generation never is.</summary>
public class IdempotentMethodsTests
{
    [Theory]
    [InlineData("/cluster.v1.AttentionService/GetStats")]
    [InlineData("/cluster.v1.ExpertService/GetInfo")]
    [InlineData("/cluster.v1.Inference/ListModels")]
    [InlineData("/grpc.health.v1.Health/Check")]
    public void ReadsAreRetried(string method) => Assert.Contains(method, IdempotentMethods.All);

    [Theory]
    [InlineData("/cluster.v1.Inference/Generate")]
    [InlineData("/cluster.v1.ExpertService/Dispatch")]
    [InlineData("/cluster.v1.Echo/Unary")]
    public void OthersAreNot(string method) => Assert.DoesNotContain(method, IdempotentMethods.All);

    [Fact]
    public void TheChannelDefaultsToTheSet() => Assert.Same(IdempotentMethods.All, new GrpcClientOptions().IdempotentMethods);
}
