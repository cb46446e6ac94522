using System.Threading.Channels;
using Cluster.Protos.V1;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Transport.Tests;

/// <summary>
/// A client that disposes a server-streaming call mid-stream must cancel the handler's token every time, also when
/// the handler's next write is what finds the stream reset: work registered on the token, like a generation holding
/// a cache, must be told the call is over.
/// </summary>
public sealed class ClientGoneTests : IAsyncLifetime
{
    private readonly EndlessStream _service = new();
    private GrpcServer _server = null!;
    private PeerChannel _peer = null!;

    public async Task InitializeAsync()
    {
        _server = await GrpcServer.StartAsync(new GrpcServerOptions(), b => b.Services.AddSingleton(_service), app => app.MapGrpcService<EndlessStream>());
        _peer = PeerChannel.ForAddress(_server.Address);
    }

    public async Task DisposeAsync()
    {
        _peer.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task DisposingAServerStreamMidStreamCancelsTheHandlersTokenEveryTime()
    {
        var echo = new Echo.EchoClient(_peer.Invoker);
        for (int i = 0; i < 100; i++)
        {
            var call = echo.ServerStream(new EchoRequest { Text = "call " + i }, deadline: TestData.In(60));
            var watched = await _service.Calls.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
            for (int m = 0; m < 3; m++) Assert.True(await call.ResponseStream.MoveNext());
            call.Dispose();
            var fired = await Task.WhenAny(watched.TokenFired.Task, Task.Delay(TimeSpan.FromSeconds(20)));
            Assert.True(fired == watched.TokenFired.Task, $"call {i}: the handler's token never fired after the client disposed the call; the handler ended with: {watched.Ended.Task.Status} {watched.Ended.Task.Exception?.InnerException?.Message}");
            await watched.Ended.Task.ContinueWith(_ => { }).WaitAsync(TimeSpan.FromSeconds(20));
        }
    }

    private sealed class Watched
    {
        public TaskCompletionSource TokenFired { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Writes replies as fast as the stream takes them until it fails; reports its token and its end.</summary>
    private sealed class EndlessStream : Echo.EchoBase
    {
        public Channel<Watched> Calls { get; } = Channel.CreateUnbounded<Watched>();

        public override async Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
        {
            var watched = new Watched();
            // Like work that outlives the handler (a scheduled generation): it learns of the end only through the token.
            context.CancellationToken.UnsafeRegister(static s => ((Watched)s!).TokenFired.TrySetResult(), watched);
            Calls.Writer.TryWrite(watched);
            try
            {
                var payload = ByteString.CopyFrom(new byte[64]);
                for (int i = 0; ; i++)
                    await responseStream.WriteAsync(new EchoReply { Text = request.Text, Index = i, Payload = payload }, context.CancellationToken);
            }
            catch (Exception e)
            {
                watched.Ended.TrySetException(e);
                throw;
            }
        }
    }
}
