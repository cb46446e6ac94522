using Cluster.Engine.Cache;
using Cluster.Protos.V1;
using Cluster.Transport;
using Microsoft.Extensions.Logging;
using Grpc.Core;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>The running batch: one decode step advances every sequence in it by one token.</summary>
public sealed partial class BatchScheduler
{
    private readonly List<Sequence> _running = [];
    private readonly List<ILatentCache> _stepCaches = [];
    private readonly int[] _stepTokens;

    private void Step()
    {
        int n = _running.Count;
        _stepCaches.Clear();
        for (int i = 0; i < n; i++)
        {
            _stepTokens[i] = _running[i].LastToken;
            _stepCaches.Add(_running[i].Cache!);
        }
        try { _model.Decode(_stepTokens.AsSpan(0, n), _stepCaches, _logits.AsSpan(0, n * _vocab)); }
        catch (Exception e)
        {
            _log.LogWarning(e, "decode step of {Count} sequences failed", n);
            for (int i = n - 1; i >= 0; i--) FinishRunning(i, new RpcException(new Status(CodeFor(e), $"request {_running[i].Request.Id}: decode step failed: {e.Message}")));
            return;
        }
        Counters.AddStep(n);
        // Backwards, so removing a finished sequence leaves the rows still to visit where they were.
        for (int i = n - 1; i >= 0; i--)
        {
            TokenEvent ev;
            try { ev = Sample(_running[i], _logits.AsSpan(i * _vocab, _vocab), first: false); }
            catch (Exception e)
            {
                FinishRunning(i, new RpcException(new Status(StatusCode.Internal, $"request {_running[i].Request.Id}: sampling failed: {e.Message}")));
                continue;
            }
            _running[i].Events!.Writer.TryWrite(ev);
            if (ev.FinishReason.Length > 0) FinishRunning(i, null);
        }
    }

    private void FinishRunning(int index, Exception? error)
    {
        Sequence seq = _running[index];
        _running.RemoveAt(index);
        Close(seq, error);
    }
}
