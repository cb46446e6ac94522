using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Google.Protobuf;

namespace Cluster.Transport.Legacy;

/// <summary>
/// Reads length-prefixed messages off a pipe (Kestrel's request body, or a client's response stream). With a pooled
/// decoder, each read first gives the previous message's buffers back.
/// </summary>
internal sealed class MessageReader<T>(PipeReader pipe, MessageParser<T> parser, IPooledDecoder<T>? decoder, int maxReceiveSize, string? encoding)
    where T : class, IMessage<T>
{
    private T? _previous;

    /// <summary>The next message, or null when the peer ended the stream cleanly between messages.</summary>
    // Pooled state machines: a stream's per-message awaits allocate nothing once warm.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<T?> ReadAsync(CancellationToken cancellationToken)
    {
        if (_previous is not null)
        {
            decoder!.Release(_previous);
            _previous = null;
        }
        while (true)
        {
            var result = await pipe.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (result.IsCanceled)
            {
                pipe.AdvanceTo(buffer.Start);
                throw new OperationCanceledException(cancellationToken);
            }
            T? message;
            try
            {
                if (MessageFraming.TryRead(ref buffer, parser, maxReceiveSize, encoding, out message, decoder))
                {
                    pipe.AdvanceTo(buffer.Start);
                    if (decoder is not null) _previous = message;
                    return message;
                }
            }
            catch
            {
                pipe.AdvanceTo(buffer.Start);
                throw;
            }
            if (result.IsCompleted)
            {
                pipe.AdvanceTo(buffer.End);
                if (buffer.IsEmpty) return null;
                throw new RpcException(StatusCode.Internal, $"Stream ended inside a message ({buffer.Length} bytes of an incomplete message)");
            }
            pipe.AdvanceTo(buffer.Start, buffer.End);
        }
    }
}
