using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.ExpertNode.Client;

/// <summary>
/// The persistent Dispatch stream to one expert node. Exchanges pipeline (frames written in turn, combines read in
/// the same order); a broken stream fails the exchanges on it with the node's name and is reopened by the next one. Combine frames arrive in
/// pooled buffers (<see cref="PooledMethods.Dispatch"/>): the caller releases each reply
/// (<see cref="CombineFrameDecoder.Release"/>) when it has added it, since another layer's exchange may read the
/// next frame of this stream before then.
/// </summary>
internal sealed class ExpertStream(ExpertNodeAddress node, PeerChannel channel, TimeSpan timeout, LatencyHistogram roundTrips, CancellationToken closing) : IDisposable
{
    // Frames are written one at a time; each exchange reads its reply after the exchange written before it.
    private readonly SemaphoreSlim _write = new(1, 1);
    private Task _lastRead = Task.CompletedTask;
    private readonly CancellationTokenSource _retired = CancellationTokenSource.CreateLinkedTokenSource(closing);
    private AsyncDuplexStreamingCall<DispatchFrame, CombineFrame>? _call;
    private string? _abortedFor;
    private string? _down;
    private double _secondsPerRow;

    public ExpertNodeAddress Node => node;

    /// <summary>Cancelled when the streams close or a plan leaves this node out: its health watch and probe stop.</summary>
    public CancellationToken Retired => _retired.Token;

    /// <summary>Why the node is down, or null while it is up.</summary>
    public string? DownReason => Volatile.Read(ref _down);

    /// <summary>Marks the node down; false when it already was.</summary>
    public bool MarkDown(string why) => Interlocked.CompareExchange(ref _down, why, null) is null;

    public void MarkUp() => Volatile.Write(ref _down, null);

    /// <summary>Seconds per row of its recent exchanges (0 before the first), which its failover deadline follows.</summary>
    public double SecondsPerRow => Volatile.Read(ref _secondsPerRow);

    private void Observe(int rows, TimeSpan elapsed)
    {
        double perRow = elapsed.TotalSeconds / Math.Max(1, rows);
        double old = Volatile.Read(ref _secondsPerRow);
        // Replies are read one at a time per node (in frame order), so read-modify-write needs no lock.
        Volatile.Write(ref _secondsPerRow, old == 0 ? perRow : 0.8 * old + 0.2 * perRow);
    }
    public Protos.V1.ExpertService.ExpertServiceClient Client { get; } = new(channel.Invoker);
    public Grpc.Health.V1.Health.HealthClient Health { get; } = new(channel.Invoker);

    public void Open()
    {
        _call?.Dispose();
        _call = Client.Dispatch();
    }

    /// <summary>
    /// Sends <paramref name="frame"/> and returns its combine. Exchanges pipeline: a frame goes out as soon as the one
    /// before it is written, and replies are read in the order the frames went (the node answers a stream's frames
    /// in order), so two micro-batches' rows can be on the wire to one node at once.
    /// </summary>
    public async Task<CombineFrame> ExchangeAsync(DispatchFrame frame)
    {
        using var deadline = new CancellationTokenSource(timeout);
        var read = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task previous;
        AsyncDuplexStreamingCall<DispatchFrame, CombineFrame>? call = null;
        long written = 0;
        try
        {
            await _write.WaitAsync().ConfigureAwait(false);
            written = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                // A stream given up (Abort) or broken is disposed: this exchange starts a fresh one.
                if (_call is null || Volatile.Read(ref _abortedFor) is not null)
                {
                    Reset();
                    Open();
                }
                call = _call!;
                (previous, _lastRead) = (_lastRead, read.Task);
                try { await call.RequestStream.WriteAsync(frame, deadline.Token).ConfigureAwait(false); }
                catch
                {
                    read.TrySetResult();
                    throw;
                }
            }
            finally { _write.Release(); }
        }
        catch (Exception e) when (e is not ExpertNodeException)
        {
            throw Lost(frame, e, deadline, call);
        }
        try
        {
            await previous.ConfigureAwait(false);
            // Timed from its turn to read: under micro-batch overlap an exchange may queue behind the other's.
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            CombineFrame reply;
            try
            {
                if (!await call!.ResponseStream.MoveNext(deadline.Token).ConfigureAwait(false))
                    throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) ended its dispatch stream: {call.GetStatus().Detail}", lost: true);
                reply = call.ResponseStream.Current;
            }
            catch (Exception e) when (e is not ExpertNodeException)
            {
                throw Lost(frame, e, deadline, call);
            }
            catch
            {
                Drop(call);
                throw;
            }
            if (reply.BatchId != frame.BatchId || reply.Layer != frame.Layer)
            {
                CombineFrameDecoder.Instance.Release(reply);
                Drop(call);
                throw new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) answered batch {reply.BatchId} layer {reply.Layer} to batch {frame.BatchId} layer {frame.Layer}");
            }
            if (reply.Error.Length > 0)
            {
                CombineFrameDecoder.Instance.Release(reply);
                throw new ExpertNodeException(node.Id, reply.Error);
            }
            Observe((int)frame.Rows, System.Diagnostics.Stopwatch.GetElapsedTime(start));
            roundTrips.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(written));
            return reply;
        }
        finally { read.TrySetResult(); }
    }

    /// <summary>The stream failed under this exchange: it is dropped (the next exchange opens another) and the node is to be treated as lost.</summary>
    private ExpertNodeException Lost(DispatchFrame frame, Exception e, CancellationTokenSource deadline, AsyncDuplexStreamingCall<DispatchFrame, CombineFrame>? call)
    {
        string why = e is OperationCanceledException && deadline.IsCancellationRequested ? $"no combine within {timeout.TotalSeconds:0.#} s"
            : Volatile.Read(ref _abortedFor) is { } aborted ? aborted : e.Message;
        if (call is null) Reset();
        else Drop(call);
        return new ExpertNodeException(node.Id, $"expert node {node.Id} ({node.Endpoint}) failed layer {frame.Layer}: {why}", e, lost: true);
    }

    /// <summary>Disposes <paramref name="call"/>, and forgets it if it is still the stream's (an exchange may have opened a fresh one since).</summary>
    private void Drop(AsyncDuplexStreamingCall<DispatchFrame, CombineFrame> call)
    {
        if (Interlocked.CompareExchange(ref _call, null, call) == call) Volatile.Write(ref _abortedFor, null);
        call.Dispose();
    }

    private void Reset()
    {
        Interlocked.Exchange(ref _call, null)?.Dispose();
        Volatile.Write(ref _abortedFor, null);
    }

    /// <summary>Ends the stream from outside, failing the exchange in flight (a node that answers too late is given up).</summary>
    public void Abort(string why)
    {
        Volatile.Write(ref _abortedFor, why);
        Volatile.Read(ref _call)?.Dispose();
    }

    public void Dispose()
    {
        _retired.Cancel();
        Reset();
        channel.Dispose();
    }
}
