using Cluster.Protos.V1;
using Grpc.Core;

namespace Cluster.Transport.Tests;

/// <summary>A handler's error reaches the client whole: code, message (any text), binary trailers, also after messages.</summary>
public class ErrorStatusTests(TestServer server) : IClassFixture<TestServer>
{
    [Fact]
    public async Task ErrorStatusCarriesMessageAndBinaryTrailers()
    {
        byte[] bin = [0, 1, 2, 253, 254, 255];
        var headers = new Metadata { { "echo-bin", bin } };
        const string text = "precondition failed: ünïcode 100% 日本\n";
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Echo.UnaryAsync(
            new EchoRequest { Text = text, FailCode = (int)StatusCode.FailedPrecondition }, headers, TestData.In(10)).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Equal(text, e.Status.Detail);
        Assert.Equal(bin, e.Trailers.GetValueBytes("echo-bin"));
    }

    [Fact]
    public async Task ErrorAfterMessagesComesInTrailers()
    {
        using var call = server.Echo.Bidi(deadline: TestData.In(10));
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "ok" });
        Assert.True(await call.ResponseStream.MoveNext());
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "gone", FailCode = (int)StatusCode.Aborted });
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal((StatusCode.Aborted, "gone"), (e.StatusCode, e.Status.Detail));
        Assert.Equal(StatusCode.Aborted, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task ServerStreamFailingAfterRepliesGivesItsStatusAfterThem()
    {
        // Each of the three replies runs the same checks, so the first one already fails: no message, just the status.
        using var call = server.Echo.ServerStream(new EchoRequest { Text = "nope", Count = 3, FailCode = (int)StatusCode.OutOfRange }, deadline: TestData.In(10));
        var e = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal((StatusCode.OutOfRange, "nope"), (e.StatusCode, e.Status.Detail));
    }

    [Fact]
    public async Task ServerFailingMidUploadGivesItsStatusToWritesAndResponse()
    {
        using var call = server.Echo.ClientStream(deadline: TestData.In(30));
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "stop", FailCode = (int)StatusCode.FailedPrecondition });
        var big = new EchoRequest { Payload = TestData.Pattern(256 * 1024) };
        StatusCode? writeFailed = null;
        for (int i = 0; i < 200 && writeFailed is null; i++)
        {
            try { await call.RequestStream.WriteAsync(big); }
            catch (RpcException e) { writeFailed = e.StatusCode; }
        }
        // grpc-dotnet gives a write the call's status once the call is over, CANCELLED when the end caught the write
        // in flight; either way the upload stops, and the response carries the server's status.
        Assert.NotNull(writeFailed);
        Assert.Contains(writeFailed.Value, new[] { StatusCode.FailedPrecondition, StatusCode.Cancelled });
        var final = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal((StatusCode.FailedPrecondition, "stop"), (final.StatusCode, final.Status.Detail));
    }
}
