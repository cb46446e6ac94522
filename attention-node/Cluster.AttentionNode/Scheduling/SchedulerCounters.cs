namespace Cluster.AttentionNode.Scheduling;

/// <summary>What the scheduler has done so far; read from any thread.</summary>
public sealed class SchedulerCounters
{
    private int _running, _queued, _peakBatch;
    private long _promptTokens, _computedPromptTokens, _queuedPromptTokens, _generatedTokens, _steps, _kvBytesSent, _kvBytesReceived;

    /// <summary>Sequences holding a batch slot: in prefill or in the running batch.</summary>
    public int Running => Volatile.Read(ref _running);
    /// <summary>Sequences admitted to the cache and waiting for a batch slot.</summary>
    public int Queued => Volatile.Read(ref _queued);
    /// <summary>Most sequences decoded together in one step.</summary>
    public int PeakBatch => Volatile.Read(ref _peakBatch);
    /// <summary>Prompt tokens of the prompts prefilled here, prefix hits included.</summary>
    public long PromptTokens => Interlocked.Read(ref _promptTokens);
    /// <summary>Prompt tokens run through the model here: prefix hits are not.</summary>
    public long ComputedPromptTokens => Interlocked.Read(ref _computedPromptTokens);
    /// <summary>Prompt tokens waiting for or in prefill.</summary>
    public long QueuedPromptTokens => Interlocked.Read(ref _queuedPromptTokens);
    public long GeneratedTokens => Interlocked.Read(ref _generatedTokens);
    public long DecodeSteps => Interlocked.Read(ref _steps);
    /// <summary>Latent cache bytes streamed to decode nodes.</summary>
    public long KvBytesSent => Interlocked.Read(ref _kvBytesSent);
    /// <summary>Latent cache bytes received from prefill nodes.</summary>
    public long KvBytesReceived => Interlocked.Read(ref _kvBytesReceived);

    internal void SetRunning(int n) => Volatile.Write(ref _running, n);
    internal void AddQueued(int delta) => Interlocked.Add(ref _queued, delta);
    internal void AddPrompt(int n) => Interlocked.Add(ref _promptTokens, n);
    internal void AddComputedPrompt(int n) => Interlocked.Add(ref _computedPromptTokens, n);
    internal void AddQueuedPrompt(long delta) => Interlocked.Add(ref _queuedPromptTokens, delta);
    internal void AddGenerated(int n) => Interlocked.Add(ref _generatedTokens, n);
    internal void AddKvSent(long bytes) => Interlocked.Add(ref _kvBytesSent, bytes);
    internal void AddKvReceived(long bytes) => Interlocked.Add(ref _kvBytesReceived, bytes);

    internal void AddStep(int batch)
    {
        Interlocked.Increment(ref _steps);
        if (batch > _peakBatch) Volatile.Write(ref _peakBatch, batch);
    }
}
