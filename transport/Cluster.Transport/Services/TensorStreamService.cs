using Cluster.Protos.V1;
using Grpc.Core;

namespace Cluster.Transport.Services;

/// <summary>
/// cluster.v1.TensorStream with a per-frame function: each frame in gives at most one frame out, in order. Frames
/// arrive pooled (<see cref="PooledMethods.Exchange"/>): a frame is valid until the function's task completes.
/// </summary>
[BindServiceMethod(typeof(TensorStreamService), nameof(BindService))]
public sealed class TensorStreamService(Func<TensorFrame, ServerCallContext, ValueTask<TensorFrame?>> onFrame) : TensorStream.TensorStreamBase
{
    /// <summary>For server reflection, which finds a service's descriptor beside its bind method.</summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => TensorStream.Descriptor;

    /// <summary>The service parameter is the generated base's type: the binder finds the handlers as its overrides.</summary>
    public static void BindService(ServiceBinderBase binder, TensorStream.TensorStreamBase? service) =>
        TensorStream.BindService(new PooledMethodBinder(binder), service);

    /// <summary>Sends every frame straight back: the peer of tests and the transport benchmark.</summary>
    public static TensorStreamService Echo() => new((frame, _) => ValueTask.FromResult<TensorFrame?>(frame));

    public override async Task Exchange(IAsyncStreamReader<TensorFrame> requestStream, IServerStreamWriter<TensorFrame> responseStream, ServerCallContext context)
    {
        using var frames = new PooledReader<TensorFrame>(requestStream, TensorFrameDecoder.Instance);
        while (await frames.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            var reply = await onFrame(frames.Current, context).ConfigureAwait(false);
            // The reply may be the frame itself: it is written before the next read releases it.
            if (reply is not null) await responseStream.WriteAsync(reply, context.CancellationToken).ConfigureAwait(false);
        }
    }
}
