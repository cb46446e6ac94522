using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using Google.Protobuf;

namespace Cluster.Transport.Legacy;

/// <summary>
/// One call on the client side, of any type: the request goes out as an HTTP/2 request whose body stays open
/// while messages are written; the response is read message by message, then its trailers give the status.
/// </summary>
public sealed class GrpcCall<TRequest, TResponse> : IAsyncStreamReader<TResponse>, IClientStreamWriter<TRequest>, IDisposable
    where TRequest : class, IMessage<TRequest>
    where TResponse : class, IMessage<TResponse>
{
    private static readonly TransferCodingWithQualityHeaderValue s_teTrailers = new("trailers");
    private static readonly ProductInfoHeaderValue s_userAgent = new("cluster-grpc", "1.0");

    private readonly GrpcChannel _channel;
    private readonly Method<TRequest, TResponse> _method;
    private readonly CallOptions _options;
    private readonly CancellationTokenSource _cts;
    private readonly CancellationTokenRegistration _userCancel;
    private readonly DateTime? _deadline;
    private CancellationTokenSource? _deadlineTimer;
    private readonly PooledBufferWriter _buffer = new();
    private RequestContent? _content;
    private Task<HttpResponseMessage>? _send;
    private HttpResponseMessage? _response;
    private MessageReader<TResponse>? _reader;
    private TResponse? _current;
    private Metadata? _headers;
    private Metadata? _trailers;
    private Status? _status;
    private bool _requestCompleted;
    private bool _writing;

    internal GrpcCall(GrpcChannel channel, Method<TRequest, TResponse> method, CallOptions options)
    {
        _channel = channel;
        _method = method;
        _options = options;
        _deadline = options.EffectiveDeadline();
        _cts = new CancellationTokenSource();
        if (options.CancellationToken.CanBeCanceled)
            _userCancel = options.CancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _cts);
    }

    public TResponse Current => _current ?? throw new InvalidOperationException("Call MoveNext first");
    /// <summary>The request side, for client and duplex streaming calls.</summary>
    public IClientStreamWriter<TRequest> RequestStream => _method.Type is MethodType.ClientStreaming or MethodType.DuplexStreaming
        ? this : throw new InvalidOperationException($"{_method.FullName} takes a single request");
    public IAsyncStreamReader<TResponse> ResponseStream => this;

    internal void Start(TRequest? single)
    {
        if (_deadline is { } deadline && deadline - DateTime.UtcNow < GrpcTimeout.MaxTimer)
        {
            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero)
            {
                _status = new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded");
                _send = Task.FromException<HttpResponseMessage>(new RpcException(_status.Value));
                return;
            }
            // A timer of its own, so that a cancellation can be told apart as the deadline's.
            _deadlineTimer = new CancellationTokenSource(remaining);
            _deadlineTimer.Token.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _cts);
        }
        if (single is not null)
        {
            MessageFraming.Write(_buffer, single, _channel.Options.MaxSendMessageSize, _options.Gzip);
            _content = new RequestContent(_buffer.WrittenMemory);
        }
        else _content = new RequestContent();

        var request = new HttpRequestMessage(HttpMethod.Post, _channel.UriFor(_method.FullName))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = _content,
        };
        var headers = request.Headers;
        headers.TE.Add(s_teTrailers);
        headers.UserAgent.Add(s_userAgent);
        headers.TryAddWithoutValidation(GrpcProtocol.AcceptEncoding, GrpcProtocol.SupportedEncodings);
        if (_options.Gzip) headers.TryAddWithoutValidation(GrpcProtocol.Encoding, GrpcProtocol.Gzip);
        if (_deadlineTimer is not null) headers.TryAddWithoutValidation(GrpcProtocol.Timeout, GrpcTimeout.Format(_deadline!.Value - DateTime.UtcNow));
        if (_options.Headers is { } metadata)
            foreach (var e in metadata) headers.TryAddWithoutValidation(e.Key, Metadata.EncodeValue(e));
        _send = _channel.Invoker.SendAsync(request, _cts.Token);
    }

    // ---- request side ----

    // Pooled state machines: a stream's per-message awaits allocate nothing once warm.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(TRequest message, CancellationToken cancellationToken = default)
    {
        if (_requestCompleted) throw new InvalidOperationException("The request stream is already complete");
        if (_writing) throw new InvalidOperationException("A write is already in progress; await each WriteAsync before the next");
        if (_status is { } done) throw new RpcException(done, _trailers);
        _writing = true;
        try
        {
            var stream = await RequestStreamAsync().ConfigureAwait(false);
            _buffer.Reset();
            MessageFraming.Write(_buffer, message, _channel.Options.MaxSendMessageSize, _options.Gzip);
            using var reg = Link(cancellationToken);
            await stream.WriteAsync(_buffer.WrittenMemory, _cts.Token).ConfigureAwait(false);
            await stream.FlushAsync(_cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not RpcException)
        {
            // Includes ObjectDisposedException: HttpClient disposes the request stream once the server has reset it.
            throw await WriteFailureAsync(e).ConfigureAwait(false);
        }
        finally { _writing = false; }
    }

    /// <summary>
    /// A write fails when the server ended the call while we were still sending (it resets our half of the stream
    /// after its response): then the response, not the write error, says what happened.
    /// </summary>
    private async Task<Exception> WriteFailureAsync(Exception e)
    {
        if (_status is null && !_cts.IsCancellationRequested)
        {
            try { await _send!.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false); }
            catch (Exception) { /* classified below */ }
            if (_send!.IsCompletedSuccessfully)
            {
                try
                {
                    return await EnsureResponseAsync().ConfigureAwait(false)
                        ? new InvalidOperationException("The server stopped reading requests; read the response for the call's outcome")
                        : new RpcException(_status!.Value, _trailers);
                }
                catch (RpcException rpc) { return rpc; }
            }
        }
        return Fail(Classify(e));
    }

    public ValueTask CompleteAsync()
    {
        _requestCompleted = true;
        _content?.Complete();
        return ValueTask.CompletedTask;
    }

    private async ValueTask<Stream> RequestStreamAsync()
    {
        var streamTask = _content!.StreamTask;
        if (!streamTask.IsCompleted)
        {
            await Task.WhenAny(streamTask, _send!).ConfigureAwait(false);
            if (!streamTask.IsCompleted)
            {
                // The call ended before its body started: its status says why.
                await EnsureResponseAsync().ConfigureAwait(false);
                throw new RpcException(_status ?? new Status(StatusCode.Internal, "The call ended before the request was sent"), _trailers);
            }
        }
        return await streamTask.ConfigureAwait(false);
    }

    // ---- response side ----

    // Pooled state machines: a stream's per-message awaits allocate nothing once warm.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> MoveNext(CancellationToken cancellationToken = default)
    {
        using var reg = Link(cancellationToken);
        try
        {
            if (!await EnsureResponseAsync().ConfigureAwait(false)) return false;
            var message = await _reader!.ReadAsync(_cts.Token).ConfigureAwait(false);
            if (message is not null)
            {
                _current = message;
                return true;
            }
            ReadTrailers();
            return false;
        }
        catch (RpcException e) when (_status is null)
        {
            throw Fail(e.Status);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Fail(Classify(e));
        }
    }

    /// <summary>The single response of a unary or client streaming call; the status is checked after it.</summary>
    public async Task<TResponse> ResponseAsync()
    {
        if (!await MoveNext().ConfigureAwait(false))
            throw Fail(new Status(StatusCode.Internal, "The call ended with OK but no response message"));
        var response = _current!;
        if (await MoveNext().ConfigureAwait(false))
            throw Fail(new Status(StatusCode.Internal, "More than one response message for a single-response method"));
        return response;
    }

    public async Task<Metadata> ResponseHeadersAsync()
    {
        try { await EnsureResponseAsync().ConfigureAwait(false); }
        catch (RpcException) when (_headers is not null) { }
        return _headers ?? new Metadata();
    }

    /// <summary>The call's status once the response has been read to the end.</summary>
    public Status GetStatus() => _status ?? throw new InvalidOperationException("The call has not finished");
    public Metadata GetTrailers() => _trailers ?? throw new InvalidOperationException("The call has not finished");

    /// <summary>Waits for response headers; false when the call already ended without a body (trailers-only, OK).</summary>
    private async ValueTask<bool> EnsureResponseAsync()
    {
        if (_reader is not null) return true;
        if (_status is { } s) return s.StatusCode == StatusCode.OK ? false : throw new RpcException(s, _trailers);
        HttpResponseMessage response;
        try { response = await _send!.ConfigureAwait(false); }
        catch (RpcException e) { throw Fail(e.Status); }
        catch (Exception e) { throw Fail(Classify(e)); }
        _response = response;
        _headers = new Metadata();
        string? grpcStatus = null, grpcMessage = null, encoding = null;
        foreach (var (key, values) in response.Headers)
            foreach (var value in values)
                switch (key.ToLowerInvariant())
                {
                    case GrpcProtocol.Status: grpcStatus = value; break;
                    case GrpcProtocol.Message: grpcMessage = value; break;
                    case GrpcProtocol.Encoding: encoding = value; break;
                    default: _headers.TryAddFromWire(key, value); break;
                }
        if (grpcStatus is not null)
        {
            // Trailers-only: the headers are the trailers.
            _trailers = _headers;
            var status = ParseStatus(grpcStatus, grpcMessage);
            Finish(status);
            if (status.StatusCode != StatusCode.OK) throw new RpcException(status, _trailers);
            return false;
        }
        if (response.StatusCode != HttpStatusCode.OK)
            throw Fail(new Status(GrpcProtocol.FromHttpStatus(response.StatusCode), $"Bad gRPC response. HTTP status code: {(int)response.StatusCode}"));
        string? contentType = response.Content.Headers.ContentType?.ToString();
        if (!GrpcProtocol.IsGrpcContentType(contentType))
            throw Fail(new Status(StatusCode.Unknown, $"Bad gRPC response. Invalid content-type value: {contentType}"));
        if (!GrpcProtocol.IsSupportedEncoding(encoding))
            throw Fail(new Status(StatusCode.Internal, $"The server compressed with an unsupported grpc-encoding '{encoding}'"));
        var body = await response.Content.ReadAsStreamAsync(_cts.Token).ConfigureAwait(false);
        var pipe = PipeReader.Create(body, new StreamPipeReaderOptions(bufferSize: 256 * 1024, minimumReadSize: 64 * 1024));
        _reader = new MessageReader<TResponse>(pipe, _method.ResponseParser, _method.ResponseDecoder, _channel.Options.MaxReceiveMessageSize, encoding);
        return true;
    }

    private void ReadTrailers()
    {
        var trailers = new Metadata();
        string? grpcStatus = null, grpcMessage = null;
        foreach (var (key, values) in _response!.TrailingHeaders)
            foreach (var value in values)
                switch (key.ToLowerInvariant())
                {
                    case GrpcProtocol.Status: grpcStatus = value; break;
                    case GrpcProtocol.Message: grpcMessage = value; break;
                    default: trailers.TryAddFromWire(key, value); break;
                }
        _trailers = trailers;
        var status = grpcStatus is null
            ? new Status(StatusCode.Internal, "The response ended without a grpc-status trailer")
            : ParseStatus(grpcStatus, grpcMessage);
        Finish(status);
        if (status.StatusCode != StatusCode.OK) throw new RpcException(status, trailers);
    }

    private static Status ParseStatus(string code, string? message)
    {
        if (!int.TryParse(code, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int value))
            return new Status(StatusCode.Unknown, $"Invalid grpc-status '{code}'");
        return new Status((StatusCode)value, message is null ? "" : PercentEncoding.Decode(message));
    }

    private void Finish(Status status)
    {
        _status ??= status;
        _content?.Complete();
    }

    /// <summary>Records a failure, resets the HTTP/2 stream, and gives the exception to throw.</summary>
    private RpcException Fail(Status status)
    {
        _status ??= status;
        _trailers ??= new Metadata();
        _content?.Abort();
        _cts.Cancel();
        return new RpcException(_status.Value, _trailers);
    }

    private Status Classify(Exception e)
    {
        if (_status is { } known) return known;
        if (_cts.IsCancellationRequested)
            return _deadlineTimer is { IsCancellationRequested: true }
                ? new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded")
                : new Status(StatusCode.Cancelled, "Call canceled by the client.");
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is HttpProtocolException p)
                return new Status(p.ErrorCode switch
                {
                    0x8 => StatusCode.Cancelled,                 // CANCEL
                    0x7 => StatusCode.Unavailable,               // REFUSED_STREAM
                    0xb => StatusCode.ResourceExhausted,         // ENHANCE_YOUR_CALM
                    0xc => StatusCode.PermissionDenied,          // INADEQUATE_SECURITY
                    _ => StatusCode.Internal,
                }, "HTTP/2 error: " + p.Message);
        if (e is HttpRequestException or IOException)
            return new Status(StatusCode.Unavailable, "Error talking to the server: " + e.Message);
        return new Status(StatusCode.Unknown, e.GetType().Name + ": " + e.Message);
    }

    private CancellationTokenRegistration Link(CancellationToken token) =>
        token.CanBeCanceled ? token.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _cts) : default;

    /// <summary>Ends the call; if it is still running, the HTTP/2 stream is reset and the server sees a cancellation.</summary>
    public void Dispose()
    {
        if (_status is null)
        {
            _content?.Abort();
            _cts.Cancel();
        }
        _userCancel.Dispose();
        _content?.Complete();
        _response?.Dispose();
        _deadlineTimer?.Dispose();
        _cts.Dispose();
        _buffer.Dispose();
    }
}
