using System.Net;
using System.Net.Http.Headers;

namespace Cluster.Transport.Legacy;

/// <summary>
/// The request body of a call. HttpClient hands us the HTTP/2 stream when it starts sending; writers then push
/// framed messages into it until the call half-closes, which ends SerializeToStreamAsync and sends END_STREAM.
/// A single-message body (unary, server streaming) is written as soon as the stream is there.
/// </summary>
internal sealed class RequestContent : HttpContent
{
    private static readonly MediaTypeHeaderValue s_contentType = new(GrpcProtocol.ContentType);

    private readonly TaskCompletionSource<Stream> _stream = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ReadOnlyMemory<byte> _single;

    /// <summary>A body of one pre-framed message.</summary>
    public RequestContent(ReadOnlyMemory<byte> single) : this() => _single = single;

    /// <summary>A streaming body.</summary>
    public RequestContent() => Headers.ContentType = s_contentType;

    public Task<Stream> StreamTask => _stream.Task;

    public void Complete() => _done.TrySetResult();

    /// <summary>Fails the body, so HttpClient resets the HTTP/2 stream instead of ending it cleanly.</summary>
    public void Abort() => _done.TrySetException(new OperationCanceledException("The call was cancelled"));

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        if (!_single.IsEmpty)
        {
            await stream.WriteAsync(_single, cancellationToken).ConfigureAwait(false);
            return;
        }
        _stream.TrySetResult(stream);
        await _done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
