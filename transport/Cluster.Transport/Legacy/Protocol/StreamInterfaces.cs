namespace Cluster.Transport.Legacy;

/// <summary>Messages arriving on a stream, one at a time: MoveNext then Current.</summary>
public interface IAsyncStreamReader<out T>
{
    T Current { get; }
    ValueTask<bool> MoveNext(CancellationToken cancellationToken = default);
}

/// <summary>Sends messages on a stream; each write is flushed to the wire before it completes.</summary>
public interface IAsyncStreamWriter<in T>
{
    ValueTask WriteAsync(T message, CancellationToken cancellationToken = default);
}

/// <summary>The request side of a client or duplex streaming call: CompleteAsync half-closes it.</summary>
public interface IClientStreamWriter<in T> : IAsyncStreamWriter<T>
{
    ValueTask CompleteAsync();
}

public static class AsyncStreamReaderExtensions
{
    public static async IAsyncEnumerable<T> ReadAllAsync<T>(this IAsyncStreamReader<T> reader,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (await reader.MoveNext(cancellationToken).ConfigureAwait(false))
            yield return reader.Current;
    }
}
