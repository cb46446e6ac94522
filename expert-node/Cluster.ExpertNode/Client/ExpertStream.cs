using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.ExpertNode.Client;

/// <summary>
/// The persistent Dispatch stream to one expert node. Exchanges are one at a time (a frame, then its combine); a
/// broken stream fails the exchange with the node's name and is reopened by the next one. Combine frames arrive in
/// pooled buffers (<see cref="PooledMethods.Dispatch"/>): the caller releases each reply
/// (<see cref="CombineFrameDecoder.Release"/>) when it has added it, since another layer's exchange may read the
/// next frame of this stream before then.
/// </summary>
internal sealed class ExpertStream(ExpertNodeAddress node, PeerChannel channel, TimeSpan timeout) : IDisposable
{
    private readonly SemaphoreSlim _turn = new(1, 1);
    private AsyncDuplexStreamingCall<DispatchFrame, CombineFrame>? _call;

    public ExpertNodeAddress Node => node;
    public Protos.V1.ExpertService.ExpertServiceClient Client { get; } = new(channel.Invoker);
    public bool IsOpen => _call is not null;

    public void Open()
    {
        _call?.Dispose();
        _call = Client.Dispatch();
    }

    public async Task<CombineFrame> ExchangeAsync(DispatchFrame frame)
    {
        await _turn.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_call is null) Open();
            using var deadline = new CancellationTokenSource(timeout);
            CombineFrame reply;
            try
            {
                await _call!.RequestStream.WriteAsync(frame, deadline.Token).ConfigureAwait(false);
                if (!await _call.ResponseStream.MoveNext(deadline.Token).ConfigureAwait(false))
                    throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) ended its dispatch stream: {_call.GetStatus().Detail}");
                reply = _call.ResponseStream.Current;
            }
            catch (Exception e) when (e is not ExpertNodeException)
            {
                Reset();
                string why = e is OperationCanceledException && deadline.IsCancellationRequested ? $"no combine within {timeout.TotalSeconds:0.#} s" : e.Message;
                throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) failed layer {frame.Layer}: {why}", e);
            }
            catch
            {
                Reset();
                throw;
            }
            if (reply.BatchId != frame.BatchId || reply.Layer != frame.Layer)
            {
                CombineFrameDecoder.Instance.Release(reply);
                Reset();
                throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) answered batch {reply.BatchId} layer {reply.Layer} to batch {frame.BatchId} layer {frame.Layer}");
            }
            if (reply.Error.Length > 0)
            {
                CombineFrameDecoder.Instance.Release(reply);
                throw new ExpertNodeException(node.Id, reply.Error);
            }
            return reply;
        }
        finally
        {
            _turn.Release();
        }
    }

    private void Reset()
    {
        _call?.Dispose();
        _call = null;
    }

    public void Dispose()
    {
        Reset();
        channel.Dispose();
    }
}
