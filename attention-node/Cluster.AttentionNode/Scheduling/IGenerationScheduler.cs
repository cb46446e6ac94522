using System.Threading.Channels;
using Cluster.Protos.V1;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// Runs requests on the node's model. Each submitted request gets a stream of token events that ends after the
/// event carrying its finish reason, or with an <see cref="Cluster.Transport.RpcException"/> when it fails.
/// </summary>
public interface IGenerationScheduler : IAsyncDisposable
{
    /// <summary>Queues a request; cancelling <paramref name="cancel"/> removes it and frees its cache.</summary>
    ChannelReader<TokenEvent> Submit(GenerationRequest request, CancellationToken cancel);

    SchedulerCounters Counters { get; }
}

/// <summary>What the scheduler has done so far; read from any thread.</summary>
public sealed class SchedulerCounters
{
    private int _running, _queued, _peakBatch;
    private long _promptTokens, _generatedTokens, _steps;

    public int Running => Volatile.Read(ref _running);
    public int Queued => Volatile.Read(ref _queued);
    /// <summary>Most sequences decoded together in one step.</summary>
    public int PeakBatch => Volatile.Read(ref _peakBatch);
    public long PromptTokens => Interlocked.Read(ref _promptTokens);
    public long GeneratedTokens => Interlocked.Read(ref _generatedTokens);
    public long DecodeSteps => Interlocked.Read(ref _steps);

    internal void SetRunning(int n) => Volatile.Write(ref _running, n);
    internal void AddQueued(int delta) => Interlocked.Add(ref _queued, delta);
    internal void AddPrompt(int n) => Interlocked.Add(ref _promptTokens, n);
    internal void AddGenerated(int n) => Interlocked.Add(ref _generatedTokens, n);

    internal void AddStep(int batch)
    {
        Interlocked.Increment(ref _steps);
        if (batch > _peakBatch) Volatile.Write(ref _peakBatch, batch);
    }
}
