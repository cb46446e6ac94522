using System.Net;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;

namespace Cluster.Transport.Legacy;

/// <summary>Runs one method's calls: validates the HTTP/2 request, reads and writes framed messages, sends the status.</summary>
internal sealed class ServerCallHandler<TRequest, TResponse>(
    Method<TRequest, TResponse> method, Delegate handler, GrpcServerOptions options, ILogger logger)
    where TRequest : class, IMessage<TRequest>
    where TResponse : class, IMessage<TResponse>
{
    public async Task HandleAsync(HttpContext http)
    {
        if (!ServerCallGate.TryAccept(http, out string? requestEncoding)) return;

        var requestHeaders = new Metadata();
        try
        {
            foreach (var (key, values) in http.Request.Headers)
                foreach (var value in values)
                    if (value is not null) requestHeaders.TryAddFromWire(key, value);
        }
        catch (RpcException e)
        {
            ServerCallGate.RejectTrailersOnly(http, e.Status);
            return;
        }

        bool clientAcceptsGzip = http.Request.Headers[GrpcProtocol.AcceptEncoding].ToString().Contains(GrpcProtocol.Gzip, StringComparison.Ordinal);
        bool gzip = clientAcceptsGzip && (options.ResponseCompression == GrpcProtocol.Gzip || requestEncoding == GrpcProtocol.Gzip);
        if (gzip) http.Response.Headers[GrpcProtocol.Encoding] = GrpcProtocol.Gzip;

        DateTime deadline = DateTime.MaxValue;
        using var deadlineCts = new CancellationTokenSource();
        if (GrpcTimeout.TryParse(http.Request.Headers[GrpcProtocol.Timeout], out var timeout) && timeout < GrpcTimeout.MaxTimer)
        {
            deadline = DateTime.UtcNow + timeout;
            deadlineCts.CancelAfter(timeout);
        }
        using var callCts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, deadlineCts.Token);
        var token = callCts.Token;

        var state = new ServerCallState(http, options, gzip, callCts);
        var context = new ServerCallContext(state, http, method.FullName, requestHeaders, deadline, token);
        var reader = new MessageReader<TRequest>(http.Request.BodyReader, method.RequestParser, method.RequestDecoder, options.MaxReceiveMessageSize, requestEncoding);

        Status status;
        bool returned = false;
        try
        {
            try
            {
                await RunAsync(reader, state, context, token).ConfigureAwait(false);
                returned = true;
            }
            finally
            {
                // A handler that failed may have left work registered on its token (a queued or running generation);
                // callCts is disposed when this method returns, which unlinks it from a RequestAborted that fires
                // later, so the token is cancelled here or never.
                if (!returned) state.CancelCall();
            }
            status = deadlineCts.IsCancellationRequested ? DeadlineExceeded : context.Status;
        }
        catch (Exception) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client reset the stream or the connection dropped: there is no one to tell.
            return;
        }
        catch (Exception) when (deadlineCts.IsCancellationRequested)
        {
            status = DeadlineExceeded;
        }
        catch (OperationCanceledException)
        {
            status = new Status(StatusCode.Cancelled, "The call was cancelled");
        }
        catch (RpcException e)
        {
            status = e.Status;
            foreach (var entry in e.Trailers) AddEntry(context.ResponseTrailers, entry);
        }
        catch (Exception e)
        {
            logger.LogError(e, "{Method} threw", method.FullName);
            status = new Status(StatusCode.Unknown, "Exception was thrown by handler.");
        }
        state.Finish(status, context.ResponseTrailers);
    }

    private static readonly Status DeadlineExceeded = new(StatusCode.DeadlineExceeded, "Deadline Exceeded");

    private async Task RunAsync(MessageReader<TRequest> reader, ServerCallState state, ServerCallContext context, CancellationToken token)
    {
        switch (method.Type)
        {
            case MethodType.Unary:
            {
                var request = await ReadSingleAsync(reader, token).ConfigureAwait(false);
                var response = await ((UnaryHandler<TRequest, TResponse>)handler)(request, context).ConfigureAwait(false);
                if (context.Status.StatusCode == StatusCode.OK) await state.WriteMessageAsync(response, token).ConfigureAwait(false);
                break;
            }
            case MethodType.ServerStreaming:
            {
                var request = await ReadSingleAsync(reader, token).ConfigureAwait(false);
                await ((ServerStreamingHandler<TRequest, TResponse>)handler)(request, new ServerStreamWriter<TResponse>(state, token), context).ConfigureAwait(false);
                break;
            }
            case MethodType.ClientStreaming:
            {
                var response = await ((ClientStreamingHandler<TRequest, TResponse>)handler)(new ServerStreamReader<TRequest>(reader, token, state.CancelCall), context).ConfigureAwait(false);
                if (context.Status.StatusCode == StatusCode.OK) await state.WriteMessageAsync(response, token).ConfigureAwait(false);
                break;
            }
            case MethodType.DuplexStreaming:
                await ((DuplexStreamingHandler<TRequest, TResponse>)handler)(new ServerStreamReader<TRequest>(reader, token, state.CancelCall),
                    new ServerStreamWriter<TResponse>(state, token), context).ConfigureAwait(false);
                break;
        }
    }

    private static async Task<TRequest> ReadSingleAsync(MessageReader<TRequest> reader, CancellationToken token)
    {
        var request = await reader.ReadAsync(token).ConfigureAwait(false)
            ?? throw new RpcException(StatusCode.Internal, "Request stream ended without a message");
        if (await reader.ReadAsync(token).ConfigureAwait(false) is not null)
            throw new RpcException(StatusCode.Internal, "More than one request message for a single-request method");
        return request;
    }

    private static void AddEntry(Metadata metadata, Metadata.Entry entry)
    {
        if (entry.ValueBytes is { } bytes) metadata.Add(entry.Key, bytes);
        else metadata.Add(entry.Key, entry.Value!);
    }
}

/// <summary>Checks every call has to pass before its handler runs.</summary>
internal static class ServerCallGate
{
    public static bool TryAccept(HttpContext http, out string? requestEncoding)
    {
        requestEncoding = null;
        var request = http.Request;
        var response = http.Response;
        if (!GrpcProtocol.IsGrpcContentType(request.ContentType))
        {
            // The spec's answer to a non-gRPC content type is an HTTP error, so that HTTP-only clients understand it.
            response.StatusCode = (int)HttpStatusCode.UnsupportedMediaType;
            ServerCallState.WriteStatus(response.Headers, new Status(StatusCode.Internal,
                $"Content-Type '{request.ContentType}' is not supported; use application/grpc"), null);
            return false;
        }
        if (!HttpProtocol.IsHttp2(request.Protocol))
        {
            response.StatusCode = (int)HttpStatusCode.UpgradeRequired;
            response.Headers.Upgrade = "h2c";
            ServerCallState.WriteStatus(response.Headers, new Status(StatusCode.Internal, $"gRPC needs HTTP/2, not {request.Protocol}"), null);
            return false;
        }
        // Streams live as long as the peers want and carry any volume: lift the per-request limits meant for HTTP/1 uploads.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = null;
        if (http.Features.Get<IHttpMinRequestBodyDataRateFeature>() is { } rate) rate.MinDataRate = null;
        if (http.Features.Get<IHttpMinResponseDataRateFeature>() is { } outRate) outRate.MinDataRate = null;

        response.ContentType = GrpcProtocol.ContentType;
        response.Headers[GrpcProtocol.AcceptEncoding] = GrpcProtocol.SupportedEncodings;
        string? encoding = request.Headers[GrpcProtocol.Encoding];
        if (!GrpcProtocol.IsSupportedEncoding(encoding))
        {
            RejectTrailersOnly(http, new Status(StatusCode.Unimplemented,
                $"Unsupported grpc-encoding '{encoding}'; supported: {GrpcProtocol.SupportedEncodings}"));
            return false;
        }
        requestEncoding = encoding;
        return true;
    }

    public static void RejectTrailersOnly(HttpContext http, Status status)
    {
        http.Response.ContentType = GrpcProtocol.ContentType;
        ServerCallState.WriteStatus(http.Response.Headers, status, null);
    }
}
