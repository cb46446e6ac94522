using Grpc.Core;

namespace Cluster.Transport;

/// <summary>
/// Reads a stream of pooled messages with the one ownership rule: <see cref="Current"/> is valid until the next
/// <see cref="MoveNext"/> or <see cref="Dispose"/>, which give its buffers back (its bytes fields read as empty
/// afterwards). Copy what must live longer. Not for concurrent readers, as no stream reader is.
/// </summary>
public sealed class PooledReader<T>(IAsyncStreamReader<T> inner, IPooledDecoder<T> decoder) : IAsyncStreamReader<T>, IDisposable where T : class
{
    private T? _current;

    public T Current => _current ?? throw new InvalidOperationException("no message: call MoveNext first");

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        ReleaseCurrent();
        if (!await inner.MoveNext(cancellationToken).ConfigureAwait(false)) return false;
        _current = inner.Current;
        return true;
    }

    public void Dispose() => ReleaseCurrent();

    private void ReleaseCurrent()
    {
        if (_current is null) return;
        decoder.Release(_current);
        _current = null;
    }
}
