using System.Runtime.InteropServices;

namespace Cluster.Engine.Kernels;

/// <summary>A loop body over a range of items, for work that needs managed state (caches, per-sequence data).</summary>
public interface IRangeBody
{
    void Run(int start, int end);
}

/// <summary>
/// A persistent set of worker threads that run one data-parallel loop at a time. Kernels call it once per
/// matrix: at batch 1 a decode step issues hundreds of small loops, where Parallel.For's per-call allocations
/// and task scheduling would cost more than the work. The body is a function pointer over a caller-owned
/// context on the caller's stack, which stays alive because <see cref="For"/> returns only when every chunk is done.
/// The CPU backend owns one (<see cref="CpuBackend"/>); its threads live as long as the process.
/// </summary>
public sealed unsafe class WorkerPool
{
    private readonly object _callers = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly ManualResetEventSlim _done = new(false);
    private readonly int _workers;

    private delegate*<void*, int, int, void> _body;
    private void* _context;
    private int _count, _chunk;
    // One word, claimed by compare-and-swap: the loop's generation (bits 32-63), its chunk count (16-31) and its next
    // unclaimed chunk (0-15). A worker woken for an earlier loop that runs late sees the count and the next chunk of
    // the same loop at once, so it can never claim a chunk with fields of another loop.
    private long _claims;
    private int _completed;
    private Exception? _failure;

    [ThreadStatic] private static bool t_inside;

    public WorkerPool(int threads)
    {
        Threads = Math.Max(1, threads);
        _workers = Threads - 1;
        for (int i = 0; i < _workers; i++)
            new Thread(Work) { IsBackground = true, Name = $"kernel-{i}" }.Start();
    }

    /// <summary>Threads that run a loop, the caller's included.</summary>
    public int Threads { get; }

    /// <summary>
    /// Runs body(context, start, end) over [0, count) in chunks of at least <paramref name="grain"/> items.
    /// Nested calls (from inside a body) and small loops run inline on the calling thread.
    /// </summary>
    public void For(int count, int grain, void* context, delegate*<void*, int, int, void> body)
    {
        if (count <= 0) return;
        grain = Math.Max(1, grain);
        // Four chunks per thread balance uneven progress without much dispatch overhead.
        int chunk = Math.Max(grain, (count + Threads * 4 - 1) / (Threads * 4));
        // The chunk count must fit the claim word's 16 bits.
        chunk = Math.Max(chunk, (count + 0xFFFE) / 0xFFFF);
        if (_workers == 0 || t_inside || chunk >= count)
        {
            body(context, 0, count);
            return;
        }
        lock (_callers)
        {
            _body = body;
            _context = context;
            _count = count;
            _chunk = chunk;
            int chunks = (count + chunk - 1) / chunk;
            _completed = 0;
            _done.Reset();
            long generation = (Volatile.Read(ref _claims) >> 32) + 1;
            Volatile.Write(ref _claims, generation << 32 | (long)chunks << 16);
            // The caller waits for the chunks, not for the workers it woke: on a machine whose cores other processes
            // share, a woken worker may not run for a scheduler slice, and the caller then does its share itself.
            _wake.Release(Math.Min(_workers, chunks - 1));
            t_inside = true;
            try { RunChunks(); }
            finally { t_inside = false; }
            if (Volatile.Read(ref _completed) < chunks) _done.Wait();
            if (_failure is { } failure)
            {
                _failure = null;
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            }
        }
    }

    /// <summary>Runs a managed body; the body object is reused by its owner, so no allocation per call.</summary>
    public void For(int count, int grain, IRangeBody body)
    {
        var handle = GCHandle.Alloc(body);
        try { For(count, grain, (void*)GCHandle.ToIntPtr(handle), &CallBody); }
        finally { handle.Free(); }
    }

    private static void CallBody(void* context, int start, int end) =>
        ((IRangeBody)GCHandle.FromIntPtr((nint)context).Target!).Run(start, end);

    private void Work()
    {
        t_inside = true;
        while (true)
        {
            _wake.Wait();
            RunChunks();
        }
    }

    private void RunChunks()
    {
        while (true)
        {
            long claims = Volatile.Read(ref _claims);
            int i = (int)(claims & 0xFFFF), chunks = (int)((claims >> 16) & 0xFFFF);
            if (i >= chunks) return;
            // Read before the claim: a successful claim proves the loop these fields belong to had not ended.
            int chunkSize = _chunk, count = _count;
            delegate*<void*, int, int, void> body = _body;
            void* context = _context;
            if (Interlocked.CompareExchange(ref _claims, claims + 1, claims) != claims) continue;
            int start = i * chunkSize;
            // A failing chunk must not kill a worker thread: the first failure is rethrown to the caller.
            try { body(context, start, Math.Min(count, start + chunkSize)); }
            catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
            if (Interlocked.Increment(ref _completed) == chunks) _done.Set();
        }
    }
}
