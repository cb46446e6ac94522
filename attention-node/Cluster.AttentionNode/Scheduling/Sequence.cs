using Cluster.AttentionNode.Transfer;
using Cluster.Engine.Cache;
using Cluster.Engine.Sampling;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// A request as the engine thread sees it: its cache, sampler, last token, how much of its prompt is still to
/// compute, and where its output goes: token events for a generation, or the latent cache stream of a Prefill call
/// (exactly one of <see cref="Events"/> and <see cref="Transfer"/> is set).
/// </summary>
internal sealed class Sequence
{
    private Sequence(GenerationRequest request, Sampler sampler, CancellationToken cancel, bool transfer)
    {
        Request = request;
        Sampler = sampler;
        Cancel = cancel;
        if (transfer) Transfer = new KvSliceWriter();
        else Events = new TokenEventWriter();
    }

    public static Sequence ForGeneration(GenerationRequest request, Sampler sampler, CancellationToken cancel) => new(request, sampler, cancel, false);

    public static Sequence ForTransfer(GenerationRequest request, Sampler sampler, CancellationToken cancel) => new(request, sampler, cancel, true);

    public GenerationRequest Request { get; }
    public Sampler Sampler { get; }
    public CancellationToken Cancel { get; }
    public TokenEventWriter? Events { get; }
    public KvSliceWriter? Transfer { get; }
    public PagedLatentCache? Cache { get; set; }
    /// <summary>Leading prompt tokens taken from the prefix cache.</summary>
    public int CachedPrompt { get; set; }
    /// <summary>Prompt tokens not computed yet; 0 once the first token is due or was sampled elsewhere.</summary>
    public int PendingPrompt { get; set; }
    public int Generated { get; set; }
    public int LastToken { get; set; }
    public CancellationTokenRegistration Registration { get; set; }

    public bool IsStop(int token)
    {
        foreach (int s in Request.StopIds) if (s == token) return true;
        return false;
    }

    /// <summary>Ends the output stream; an error is what its reader sees.</summary>
    public void Complete(Exception? error)
    {
        Events?.Complete(error);
        Transfer?.Complete(error);
    }
}
