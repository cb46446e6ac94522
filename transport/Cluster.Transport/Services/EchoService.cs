using Cluster.Protos.V1;
using Google.Protobuf;
using Grpc.Core;

namespace Cluster.Transport.Services;

/// <summary>
/// cluster.v1.Echo, the service of the transport's tests, interop checks and benchmark. Requests can ask for a
/// delay (which honours cancellation), a failure with a given code (the text becomes the message; request metadata
/// "echo-bin" comes back as a trailer), several replies, or a reply payload of a given size.
/// </summary>
[BindServiceMethod(typeof(EchoService), nameof(BindService))]
public sealed class EchoService : Echo.EchoBase
{
    /// <summary>For server reflection, which finds a service's descriptor beside its bind method.</summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => Echo.Descriptor;

    public static void BindService(ServiceBinderBase binder, Echo.EchoBase? service) => Echo.BindService(new PooledMethodBinder(binder), service);

    /// <summary>Raised with the method's full name when a handler sees its call end early: its token fires (client gone or deadline) or its stream is reset.</summary>
    public event Action<string>? CallCancelled;

    /// <summary>
    /// Runs a handler, raising <see cref="CallCancelled"/> once when its token fires or when a read finds the stream
    /// reset: a handler awaiting a request message when the client resets gets an IOException ("The client reset the
    /// request stream"), and Kestrel cancels RequestAborted later on the thread pool, not at all if the call has
    /// completed by then.
    /// </summary>
    private async Task<T> Watched<T>(ServerCallContext context, Func<Task<T>> handler)
    {
        var watch = new Watch(this, context.Method);
        using var registration = context.CancellationToken.UnsafeRegister(static s => ((Watch)s!).Raise(), watch);
        try { return await handler().ConfigureAwait(false); }
        catch (IOException)
        {
            watch.Raise();
            throw;
        }
    }

    private sealed class Watch(EchoService service, string method)
    {
        private int _raised;

        public void Raise()
        {
            if (Interlocked.Exchange(ref _raised, 1) == 0) service.CallCancelled?.Invoke(method);
        }
    }

    private Task Watched(ServerCallContext context, Func<Task> handler) => Watched(context, async () =>
    {
        await handler().ConfigureAwait(false);
        return true;
    });

    public override Task<EchoReply> Unary(EchoRequest request, ServerCallContext context) => Watched(context, async () =>
    {
        await PrepareAsync(request, context).ConfigureAwait(false);
        return new EchoReply { Text = request.Text, Payload = ReplyPayload(request) };
    });

    /// <summary>The request's payload, or a generated one of the requested size (byte i is i mod 251).</summary>
    public static ByteString ReplyPayload(EchoRequest request)
    {
        if (request.ReplySize <= 0) return request.Payload;
        var bytes = new byte[request.ReplySize];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(i % 251);
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    public override Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context) => Watched(context, async () =>
    {
        for (int i = 0; i < request.Count; i++)
        {
            await PrepareAsync(request, context).ConfigureAwait(false);
            await responseStream.WriteAsync(new EchoReply { Text = request.Text, Payload = ReplyPayload(request), Index = i }, context.CancellationToken).ConfigureAwait(false);
        }
    });

    public override Task<EchoReply> ClientStream(IAsyncStreamReader<EchoRequest> requestStream, ServerCallContext context) => Watched(context, async () =>
    {
        int count = 0;
        long bytes = 0;
        var text = new System.Text.StringBuilder();
        while (await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            await PrepareAsync(requestStream.Current, context).ConfigureAwait(false);
            text.Append(requestStream.Current.Text);
            bytes += requestStream.Current.Payload.Length;
            count++;
        }
        return new EchoReply { Text = text.ToString(), Index = count, Payload = ByteString.CopyFromUtf8(bytes.ToString(System.Globalization.CultureInfo.InvariantCulture)) };
    });

    public override Task Bidi(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context) => Watched(context, async () =>
    {
        int i = 0;
        while (await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            var request = requestStream.Current;
            await PrepareAsync(request, context).ConfigureAwait(false);
            await responseStream.WriteAsync(new EchoReply { Text = request.Text, Payload = request.Payload, Index = i++ }, context.CancellationToken).ConfigureAwait(false);
        }
    });

    private static async Task PrepareAsync(EchoRequest request, ServerCallContext context)
    {
        if (request.DelayMs > 0) await Task.Delay(request.DelayMs, context.CancellationToken).ConfigureAwait(false);
        if (request.FailCode != 0)
        {
            var trailers = new Metadata();
            if (context.RequestHeaders.GetValueBytes("echo-bin") is { } echoed) trailers.Add("echo-bin", echoed);
            throw new RpcException(new Status((StatusCode)request.FailCode, request.Text), trailers);
        }
    }
}
