using Cluster.ExpertNode.Host;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;

namespace Cluster.ExpertNode.Client;

/// <summary>
/// The persistent Dispatch stream to one expert node. Exchanges are one at a time (a frame, then its combine); a
/// broken stream fails the exchange with the node's name and is reopened by the next one.
/// </summary>
internal sealed class ExpertStream(ExpertNodeAddress node, GrpcChannel channel, TimeSpan timeout) : IDisposable
{
    private readonly SemaphoreSlim _turn = new(1, 1);
    private GrpcCall<DispatchFrame, CombineFrame>? _call;

    public ExpertNodeAddress Node => node;
    public GrpcChannel Channel => channel;
    public bool IsOpen => _call is not null;

    public void Open()
    {
        _call?.Dispose();
        _call = channel.DuplexStreaming(ExpertMethods.Dispatch);
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
                Reset();
                throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) answered batch {reply.BatchId} layer {reply.Layer} to batch {frame.BatchId} layer {frame.Layer}");
            }
            if (reply.Error.Length > 0) throw new ExpertNodeException(node.Id, reply.Error);
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
