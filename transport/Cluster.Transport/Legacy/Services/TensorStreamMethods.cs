using Cluster.Protos.V1;

namespace Cluster.Transport.Legacy.Services;

/// <summary>
/// cluster.v1.TensorStream on the wire: the long-lived bidirectional stream of tensor frames. Frames read from it
/// hold their payload in pooled buffers, valid until the next read.
/// </summary>
public static class TensorStreamMethods
{
    public const string ServiceName = "cluster.v1.TensorStream";

    public static readonly Method<TensorFrame, TensorFrame> Exchange =
        new(MethodType.DuplexStreaming, ServiceName, "Exchange", TensorFrame.Parser, TensorFrame.Parser,
            requestDecoder: TensorFrameDecoder.Instance, responseDecoder: TensorFrameDecoder.Instance);
}

/// <summary>Opens Exchange streams to a peer.</summary>
public sealed class TensorStreamClient(GrpcChannel channel)
{
    public GrpcCall<TensorFrame, TensorFrame> Exchange(CallOptions? options = null) =>
        channel.DuplexStreaming(TensorStreamMethods.Exchange, options);
}

/// <summary>Serves Exchange with a per-frame function: each frame in gives at most one frame out, in order.</summary>
public sealed class TensorStreamService(Func<TensorFrame, ServerCallContext, ValueTask<TensorFrame?>> onFrame) : IGrpcService
{
    /// <summary>Sends every frame straight back: the peer of tests and the transport benchmark.</summary>
    public static TensorStreamService Echo() => new((frame, _) => ValueTask.FromResult<TensorFrame?>(frame));

    public void Bind(ServiceBinder binder) => binder.DuplexStreaming(TensorStreamMethods.Exchange, ExchangeAsync);

    private async Task ExchangeAsync(IAsyncStreamReader<TensorFrame> requests, IAsyncStreamWriter<TensorFrame> responses, ServerCallContext context)
    {
        while (await requests.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            var reply = await onFrame(requests.Current, context).ConfigureAwait(false);
            if (reply is not null) await responses.WriteAsync(reply, context.CancellationToken).ConfigureAwait(false);
        }
    }
}
