using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;

namespace Cluster.Transport.Legacy;

/// <summary>
/// The response side of one server call: headers once, then framed messages, then the status either in
/// trailers or, when nothing was sent yet, as a trailers-only response.
/// </summary>
/// <param name="call">The source of the handler's token, cancelled here as soon as a write finds the client gone.</param>
internal sealed class ServerCallState(HttpContext http, GrpcServerOptions options, bool gzipResponses, CancellationTokenSource call)
{
    private bool _headersSent;
    private bool _writing;
    private bool _finished;

    public bool GzipResponses { get; } = gzipResponses;

    public async Task WriteHeadersAsync(Metadata headers, CancellationToken cancellationToken)
    {
        if (_headersSent) throw new InvalidOperationException("Response headers were already sent");
        foreach (var e in headers) http.Response.Headers.Append(e.Key, Metadata.EncodeValue(e));
        _headersSent = true;
        await http.Response.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    // Pooled state machines: a stream's per-message awaits allocate nothing once warm.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteMessageAsync<T>(T message, CancellationToken cancellationToken) where T : Google.Protobuf.IMessage
    {
        if (_finished) throw new InvalidOperationException("The call has already finished");
        if (_writing) throw new InvalidOperationException("A write is already in progress; await each WriteAsync before the next");
        cancellationToken.ThrowIfCancellationRequested();
        _writing = true;
        try
        {
            _headersSent = true;
            var body = http.Response.BodyWriter;
            MessageFraming.Write(body, message, options.MaxSendMessageSize, GzipResponses);
            var flush = await body.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (flush.IsCanceled || flush.IsCompleted)
            {
                // Kestrel completes the flush on a client's RST_STREAM before it fires RequestAborted (from the
                // thread pool), so the handler's token may not have fired yet: fire it now, or work tied to it
                // (a generation holding a cache) would outlive the call.
                CancelCall();
                throw new OperationCanceledException("The client is gone", call.Token);
            }
        }
        finally { _writing = false; }
    }

    /// <summary>Cancels the handler's token: the client is gone, or the call ended with the handler failing.</summary>
    public void CancelCall()
    {
        try { call.Cancel(); }
        catch (ObjectDisposedException) { /* the call already ended */ }
    }

    public void Finish(Status status, Metadata trailers)
    {
        _finished = true;
        var response = http.Response;
        if (!_headersSent && !response.HasStarted)
        {
            // Trailers-only: the status travels in the one HEADERS frame that ends the stream.
            WriteStatus(response.Headers, status, trailers);
            return;
        }
        var trailerHeaders = new HeaderDictionary();
        WriteStatus(trailerHeaders, status, trailers);
        foreach (var (key, value) in trailerHeaders) response.AppendTrailer(key, value);
    }

    public static void WriteStatus(IHeaderDictionary headers, Status status, Metadata? trailers)
    {
        headers[GrpcProtocol.Status] = ((int)status.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!string.IsNullOrEmpty(status.Detail)) headers[GrpcProtocol.Message] = PercentEncoding.Encode(status.Detail);
        if (trailers is null) return;
        foreach (var e in trailers) headers.Append(e.Key, Metadata.EncodeValue(e));
    }
}
