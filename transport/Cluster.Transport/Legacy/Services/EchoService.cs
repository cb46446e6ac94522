using Cluster.Protos.V1;
using Google.Protobuf;

namespace Cluster.Transport.Legacy.Services;

/// <summary>
/// The echo service. Requests can ask for a delay (which honours cancellation), a failure with a given code
/// (the text becomes the message; request metadata "echo-bin" comes back as a trailer), or several replies.
/// </summary>
public sealed class EchoService : IGrpcService
{
    /// <summary>Raised with the method's full name when a handler sees its call cancelled (client gone or deadline).</summary>
    public event Action<string>? CallCancelled;

    private void OnCancelled(ServerCallContext context) => CallCancelled?.Invoke(context.Method);

    public void Bind(ServiceBinder binder)
    {
        binder.Unary(EchoMethods.Unary, UnaryAsync);
        binder.ServerStreaming(EchoMethods.ServerStream, ServerStreamAsync);
        binder.ClientStreaming(EchoMethods.ClientStream, ClientStreamAsync);
        binder.DuplexStreaming(EchoMethods.Bidi, BidiAsync);
    }

    private async Task<EchoReply> UnaryAsync(EchoRequest request, ServerCallContext context)
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

    private async Task ServerStreamAsync(EchoRequest request, IAsyncStreamWriter<EchoReply> responses, ServerCallContext context)
    {
        for (int i = 0; i < request.Count; i++)
        {
            await PrepareAsync(request, context).ConfigureAwait(false);
            await responses.WriteAsync(new EchoReply { Text = request.Text, Payload = ReplyPayload(request), Index = i }, context.CancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<EchoReply> ClientStreamAsync(IAsyncStreamReader<EchoRequest> requests, ServerCallContext context)
    {
        int count = 0;
        long bytes = 0;
        var text = new System.Text.StringBuilder();
        try
        {
            while (await requests.MoveNext(context.CancellationToken).ConfigureAwait(false))
            {
                await PrepareAsync(requests.Current, context).ConfigureAwait(false);
                text.Append(requests.Current.Text);
                bytes += requests.Current.Payload.Length;
                count++;
            }
        }
        catch (OperationCanceledException) { OnCancelled(context); throw; }
        return new EchoReply { Text = text.ToString(), Index = count, Payload = ByteString.CopyFromUtf8(bytes.ToString(System.Globalization.CultureInfo.InvariantCulture)) };
    }

    private async Task BidiAsync(IAsyncStreamReader<EchoRequest> requests, IAsyncStreamWriter<EchoReply> responses, ServerCallContext context)
    {
        int i = 0;
        try
        {
            while (await requests.MoveNext(context.CancellationToken).ConfigureAwait(false))
            {
                var request = requests.Current;
                await PrepareAsync(request, context).ConfigureAwait(false);
                await responses.WriteAsync(new EchoReply { Text = request.Text, Payload = request.Payload, Index = i++ }, context.CancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) { OnCancelled(context); throw; }
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
            if (context.RequestHeaders.GetBytes("echo-bin") is { } echoed) trailers.Add("echo-bin", echoed);
            throw new RpcException(new Status((StatusCode)request.FailCode, request.Text), trailers);
        }
    }
}
