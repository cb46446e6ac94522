using Cluster.Protos.V1;
using Google.Protobuf;

namespace Cluster.Transport.Services;

/// <summary>
/// The echo service. Requests can ask for a delay (which honours cancellation), a failure with a given code
/// (the text becomes the message; request metadata "echo-bin" comes back as a trailer), or several replies.
/// </summary>
public sealed class EchoService : IGrpcService
{
    /// <summary>Completes when a handler saw its call cancelled (client gone or deadline), for tests that check it.</summary>
    public TaskCompletionSource<string> Cancelled { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void ResetCancelled() => Cancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);

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
        return new EchoReply { Text = request.Text, Payload = request.Payload };
    }

    private async Task ServerStreamAsync(EchoRequest request, IAsyncStreamWriter<EchoReply> responses, ServerCallContext context)
    {
        for (int i = 0; i < request.Count; i++)
        {
            await PrepareAsync(request, context).ConfigureAwait(false);
            await responses.WriteAsync(new EchoReply { Text = request.Text, Payload = request.Payload, Index = i }, context.CancellationToken).ConfigureAwait(false);
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
        catch (OperationCanceledException) { Cancelled.TrySetResult(context.Method); throw; }
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
        catch (OperationCanceledException) { Cancelled.TrySetResult(context.Method); throw; }
        catch (IOException) { Cancelled.TrySetResult(context.Method); throw; }
    }

    private async Task PrepareAsync(EchoRequest request, ServerCallContext context)
    {
        if (request.DelayMs > 0)
        {
            try { await Task.Delay(request.DelayMs, context.CancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { Cancelled.TrySetResult(context.Method); throw; }
        }
        if (request.FailCode != 0)
        {
            var trailers = new Metadata();
            if (context.RequestHeaders.GetBytes("echo-bin") is { } echoed) trailers.Add("echo-bin", echoed);
            throw new RpcException(new Status((StatusCode)request.FailCode, request.Text), trailers);
        }
    }
}
