using Grpc.Core;
using Google.Protobuf.Reflection;
using Grpc.Reflection.V1Alpha;

namespace Cluster.Transport.Tests;

/// <summary>Server reflection (grpcurl, grpcui) lists what the server maps, the infrastructure included, and serves the descriptors.</summary>
public class ReflectionTests(TestServer server) : IClassFixture<TestServer>
{
    [Fact]
    public async Task ListServicesNamesEveryMappedService()
    {
        var response = await Ask(new ServerReflectionRequest { ListServices = "" });
        var names = response.ListServicesResponse.Service.Select(s => s.Name).ToList();
        // The pooled TensorStream binds through PooledMethodBinder and still shows: its Descriptor property is found.
        Assert.Equal(["cluster.v1.Echo", "cluster.v1.TensorStream", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"], names.Order());
    }

    [Fact]
    public async Task FileContainingSymbolReturnsTheEchoDescriptor()
    {
        var response = await Ask(new ServerReflectionRequest { FileContainingSymbol = "cluster.v1.Echo" });
        Assert.Equal(ServerReflectionResponse.MessageResponseOneofCase.FileDescriptorResponse, response.MessageResponseCase);
        var files = response.FileDescriptorResponse.FileDescriptorProto.Select(FileDescriptorProto.Parser.ParseFrom).ToList();
        var echo = Assert.Single(files, f => f.Name == "cluster/v1/echo.proto");
        var service = Assert.Single(echo.Service);
        Assert.Equal("Echo", service.Name);
        Assert.Equal(["Unary", "ServerStream", "ClientStream", "Bidi"], service.Method.Select(m => m.Name));
    }

    [Fact]
    public async Task AnUnknownSymbolIsNotFound()
    {
        var response = await Ask(new ServerReflectionRequest { FileContainingSymbol = "no.such.Thing" });
        Assert.Equal((int)Grpc.Core.StatusCode.NotFound, response.ErrorResponse.ErrorCode);
    }

    private async Task<ServerReflectionResponse> Ask(ServerReflectionRequest request)
    {
        using var call = new ServerReflection.ServerReflectionClient(server.Peer.Invoker).ServerReflectionInfo(deadline: TestData.In(10));
        await call.RequestStream.WriteAsync(request);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());
        return call.ResponseStream.Current;
    }
}
