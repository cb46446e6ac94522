using Cluster.Protos.V1;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.Transport.Services;

/// <summary>
/// cluster.v1.Echo, the service of the transport's tests, interop checks and benchmark. Requests can ask for a
/// delay (which honours cancellation), a failure with a given code (the text becomes the message; request metadata
/// "echo-bin" comes back as a trailer), several replies, or a reply payload of a given size.
/// </summary>
public sealed class EchoService : Echo.EchoBase
{
    /// <summary>Raised with the method's full name when a handler sees its call cancelled (client gone or deadline).</summary>
    public event Action<string>? CallCancelled;

    private void OnCancelled(ServerCallContext context) => CallCancelled?.Invoke(context.Method);

    public override async Task<EchoReply> Unary(EchoRequest request, ServerCallContext context)
    {
        await PrepareAsync(request, context).ConfigureAwait(false);
        return new EchoReply { Text = request.Text, Payload = ReplyPayload(request) };
    }

    /// <summary>The request's payload, or a generated one of the requested size (byte i is i mod 251).</summary>
    public static ByteString ReplyPayload(EchoRequest request)
    {
        if (request.ReplySize <= 0) return request.Payload;
        var bytes = new byte[request.ReplySize];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(i % 251);
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    public override async Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        for (int i = 0; i < request.Count; i++)
        {
            await PrepareAsync(request, context).ConfigureAwait(false);
            await responseStream.WriteAsync(new EchoReply { Text = request.Text, Payload = ReplyPayload(request), Index = i }, context.CancellationToken).ConfigureAwait(false);
        }
    }

    public override async Task<EchoReply> ClientStream(IAsyncStreamReader<EchoRequest> requestStream, ServerCallContext context)
    {
        int count = 0;
        long bytes = 0;
        var text = new System.Text.StringBuilder();
        try
        {
            while (await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
            {
                await PrepareAsync(requestStream.Current, context).ConfigureAwait(false);
                text.Append(requestStream.Current.Text);
                bytes += requestStream.Current.Payload.Length;
                count++;
            }
        }
        catch (OperationCanceledException) { OnCancelled(context); throw; }
        return new EchoReply { Text = text.ToString(), Index = count, Payload = ByteString.CopyFromUtf8(bytes.ToString(System.Globalization.CultureInfo.InvariantCulture)) };
    }

    public override async Task Bidi(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        int i = 0;
        try
        {
            while (await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
            {
                var request = requestStream.Current;
                await PrepareAsync(request, context).ConfigureAwait(false);
                await responseStream.WriteAsync(new EchoReply { Text = request.Text, Payload = request.Payload, Index = i++ }, context.CancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && context.CancellationToken.IsCancellationRequested) { OnCancelled(context); throw; }
    }

    private async Task PrepareAsync(EchoRequest request, ServerCallContext context)
    {
        if (request.DelayMs > 0)
        {
            try { await Task.Delay(request.DelayMs, context.CancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { OnCancelled(context); throw; }
        }
        if (request.FailCode != 0)
        {
            var trailers = new Metadata();
            if (context.RequestHeaders.GetValueBytes("echo-bin") is { } echoed) trailers.Add("echo-bin", echoed);
            throw new RpcException(new Status((StatusCode)request.FailCode, request.Text), trailers);
        }
    }
}
