using System.Runtime.CompilerServices;
using Google.Protobuf;

namespace Cluster.Transport.Legacy;

/// <param name="clientGone">Cancels the call's token when a read finds the client gone.</param>
internal sealed class ServerStreamReader<T>(MessageReader<T> reader, CancellationToken callToken, Action clientGone) : IAsyncStreamReader<T>
    where T : class, IMessage<T>
{
    private T? _current;

    public T Current => _current ?? throw new InvalidOperationException("Call MoveNext first");

    // Pooled state machines: a stream's per-message awaits allocate nothing once warm.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> MoveNext(CancellationToken cancellationToken = default)
    {
        try
        {
            if (!cancellationToken.CanBeCanceled || cancellationToken == callToken)
            {
                _current = await reader.ReadAsync(callToken).ConfigureAwait(false);
                return _current is not null;
            }
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(callToken, cancellationToken);
            _current = await reader.ReadAsync(linked.Token).ConfigureAwait(false);
            return _current is not null;
        }
        catch (IOException e)
        {
            // Kestrel reports a client's RST_STREAM as an I/O error on the body; to a handler it is a cancellation,
            // and its token fires now, not only when Kestrel gets round to RequestAborted.
            clientGone();
            throw new OperationCanceledException("The client reset the stream or the connection was lost", e, callToken);
        }
    }
}

internal sealed class ServerStreamWriter<T>(ServerCallState state, CancellationToken callToken) : IAsyncStreamWriter<T>
    where T : class, IMessage<T>
{
    public ValueTask WriteAsync(T message, CancellationToken cancellationToken = default) =>
        state.WriteMessageAsync(message, cancellationToken.CanBeCanceled ? cancellationToken : callToken);
}
