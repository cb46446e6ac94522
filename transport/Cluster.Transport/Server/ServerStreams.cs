using Google.Protobuf;

namespace Cluster.Transport;

internal sealed class ServerStreamReader<T>(MessageReader<T> reader, CancellationToken callToken) : IAsyncStreamReader<T>
    where T : class, IMessage<T>
{
    private T? _current;

    public T Current => _current ?? throw new InvalidOperationException("Call MoveNext first");

    public async ValueTask<bool> MoveNext(CancellationToken cancellationToken = default)
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
}

internal sealed class ServerStreamWriter<T>(ServerCallState state, CancellationToken callToken) : IAsyncStreamWriter<T>
    where T : class, IMessage<T>
{
    public ValueTask WriteAsync(T message, CancellationToken cancellationToken = default) =>
        state.WriteMessageAsync(message, cancellationToken.CanBeCanceled ? cancellationToken : callToken);
}
