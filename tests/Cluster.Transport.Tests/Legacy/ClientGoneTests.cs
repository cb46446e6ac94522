using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Services;
using Google.Protobuf;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>
/// A client that disposes a server-streaming call mid-stream must cancel the handler's token every time, also when
/// the handler's next write is what finds the stream reset (Kestrel completes the flush before it fires
/// RequestAborted): work registered on the token, like a generation holding a cache, must be told the call is over.
/// </summary>
public sealed class ClientGoneTests : IAsyncLifetime
{
    private static readonly CallOptions TenSeconds = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly EndlessStream _service = new();
    private GrpcServer _server = null!;
    private GrpcChannel _channel = null!;

    public async Task InitializeAsync()
    {
        _server = await GrpcServer.StartAsync(new GrpcServerOptions(), _service);
        _channel = GrpcChannel.ForAddress(_server.Address);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task DisposingAServerStreamMidStreamCancelsTheHandlersTokenEveryTime()
    {
        for (int i = 0; i < 100; i++)
        {
            var call = _channel.ServerStreaming(EchoMethods.ServerStream, new EchoRequest { Text = "call " + i }, TenSeconds);
            var watched = await _service.Calls.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            for (int m = 0; m < 3; m++) Assert.True(await call.ResponseStream.MoveNext());
            call.Dispose();
            var fired = await Task.WhenAny(watched.TokenFired.Task, Task.Delay(TimeSpan.FromSeconds(10)));
            Assert.True(fired == watched.TokenFired.Task, $"call {i}: the handler's token never fired after the client disposed the call; the handler ended with: {watched.Ended.Task.Status} {watched.Ended.Task.Exception?.InnerException?.Message}");
            await watched.Ended.Task.ContinueWith(_ => { }).WaitAsync(TimeSpan.FromSeconds(10));
        }
    }

    private sealed class Watched
    {
        public TaskCompletionSource TokenFired { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Writes replies as fast as the stream takes them until it fails; reports its token and its end.</summary>
    private sealed class EndlessStream : IGrpcService
    {
        public System.Threading.Channels.Channel<Watched> Calls { get; } = System.Threading.Channels.Channel.CreateUnbounded<Watched>();

        public void Bind(ServiceBinder binder) => binder.ServerStreaming(EchoMethods.ServerStream, StreamAsync);

        private async Task StreamAsync(EchoRequest request, IAsyncStreamWriter<EchoReply> responses, ServerCallContext context)
        {
            var watched = new Watched();
            // Like work that outlives the handler (a scheduled generation): it learns of the end only through the token.
            context.CancellationToken.UnsafeRegister(static s => ((Watched)s!).TokenFired.TrySetResult(), watched);
            Calls.Writer.TryWrite(watched);
            try
            {
                var payload = ByteString.CopyFrom(new byte[64]);
                for (int i = 0; ; i++)
                    await responses.WriteAsync(new EchoReply { Text = request.Text, Index = i, Payload = payload }, context.CancellationToken);
            }
            catch (Exception e)
            {
                watched.Ended.TrySetException(e);
                throw;
            }
        }
    }
}
