namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// Decides the engine's next step from plain state, knowing nothing of the model, the cache or the transport. A
/// sequence waits (in arrival order) for one of MaxBatch slots, then holds one in prefill or in the running batch.
/// Prefill is chunked: a chunk is at most PrefillChunk tokens of one prompt, the prompts in prefill taking turns, so
/// a short prompt waits for at most one chunk of each prompt ahead of it. While both have work, prefill chunks and
/// decode steps of the whole batch alternate, so neither a long prompt nor the batch holds the other up by more than
/// one step. Before each decision cancelled sequences leave, wherever they are, and free slots are filled: a prompt
/// goes to prefill, a sequence whose prompt was computed elsewhere (a prefill node) straight into the batch.
/// Used by the engine thread only.
/// </summary>
internal sealed class SchedulePolicy
{
    private readonly int _maxBatch, _prefillChunk;
    private readonly List<Sequence> _waiting = [], _prefilling = [], _running = [];
    // The prompt whose turn it is; it points at the next one when a finished prompt leaves.
    private int _nextPrefill;
    private bool _decodeDue;

    public SchedulePolicy(int maxBatch, int prefillChunk)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(prefillChunk, 1);
        _maxBatch = maxBatch;
        _prefillChunk = prefillChunk;
    }

    public IReadOnlyList<Sequence> Waiting => _waiting;
    public IReadOnlyList<Sequence> Prefilling => _prefilling;
    public IReadOnlyList<Sequence> Running => _running;
    /// <summary>Sequences holding a batch slot.</summary>
    public int Active => _prefilling.Count + _running.Count;
    public bool IsEmpty => _waiting.Count == 0 && Active == 0;

    /// <summary>A submitted sequence: it waits for a slot behind those that came before it.</summary>
    public void Add(Sequence seq) => _waiting.Add(seq);

    /// <summary>
    /// Moves the cancelled sequences into <paramref name="cancelled"/> for the caller to end, fills free slots and
    /// returns the next step.
    /// </summary>
    public ScheduledStep Next(List<Sequence> cancelled)
    {
        TakeCancelled(cancelled);
        Admit();
        if (_prefilling.Count > 0 && !(_decodeDue && _running.Count > 0))
        {
            if (_nextPrefill >= _prefilling.Count) _nextPrefill = 0;
            Sequence seq = _prefilling[_nextPrefill];
            _decodeDue = true;
            return ScheduledStep.Prefill(seq, seq.Request.Prompt.Length - seq.PendingPrompt, Math.Min(_prefillChunk, seq.PendingPrompt));
        }
        _decodeDue = false;
        return _running.Count > 0 ? ScheduledStep.Decode(_running) : ScheduledStep.Idle;
    }

    /// <summary>
    /// The chunk of <paramref name="step"/> was computed. True when it was the prompt's last: the sequence has left
    /// prefill, and <see cref="Join"/> puts it in the batch if it goes on decoding here.
    /// </summary>
    public bool Prefilled(in ScheduledStep step)
    {
        Sequence seq = step.Sequence!;
        seq.PendingPrompt -= step.Count;
        if (seq.PendingPrompt > 0)
        {
            _nextPrefill++;
            return false;
        }
        Leave(seq);
        return true;
    }

    /// <summary>A sequence whose prompt is done and whose first token did not end it joins the running batch.</summary>
    public void Join(Sequence seq) => _running.Add(seq);

    /// <summary>Frees the slot of a sequence that finished or failed, in prefill or in the batch.</summary>
    public void Leave(Sequence seq)
    {
        int i = _running.IndexOf(seq);
        if (i >= 0)
        {
            _running.RemoveAt(i);
            return;
        }
        i = _prefilling.IndexOf(seq);
        if (i < 0) return;
        _prefilling.RemoveAt(i);
        if (i < _nextPrefill) _nextPrefill--;
    }

    /// <summary>Moves every sequence holding a slot into <paramref name="into"/>: the step failed for a reason of the node's, or it stops.</summary>
    public void TakeActive(List<Sequence> into)
    {
        into.AddRange(_running);
        into.AddRange(_prefilling);
        _running.Clear();
        _prefilling.Clear();
        _nextPrefill = 0;
    }

    /// <summary>Moves every waiting sequence into <paramref name="into"/>: the node stops.</summary>
    public void TakeWaiting(List<Sequence> into)
    {
        into.AddRange(_waiting);
        _waiting.Clear();
    }

    private void TakeCancelled(List<Sequence> cancelled)
    {
        for (int i = _running.Count - 1; i >= 0; i--)
            if (_running[i].Cancel.IsCancellationRequested)
            {
                cancelled.Add(_running[i]);
                _running.RemoveAt(i);
            }
        for (int i = _prefilling.Count - 1; i >= 0; i--)
            if (_prefilling[i].Cancel.IsCancellationRequested)
            {
                cancelled.Add(_prefilling[i]);
                _prefilling.RemoveAt(i);
                if (i < _nextPrefill) _nextPrefill--;
            }
        for (int i = _waiting.Count - 1; i >= 0; i--)
            if (_waiting[i].Cancel.IsCancellationRequested)
            {
                cancelled.Add(_waiting[i]);
                _waiting.RemoveAt(i);
            }
    }

    /// <summary>Fills free slots in arrival order.</summary>
    private void Admit()
    {
        int taken = 0;
        while (taken < _waiting.Count && Active < _maxBatch)
        {
            Sequence seq = _waiting[taken++];
            if (seq.PendingPrompt > 0) _prefilling.Add(seq);
            else _running.Add(seq);
        }
        _waiting.RemoveRange(0, taken);
    }
}
