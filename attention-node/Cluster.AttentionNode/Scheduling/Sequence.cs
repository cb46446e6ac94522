using System.Threading.Channels;
using Cluster.Engine.Cache;
using Cluster.Engine.Sampling;
using Cluster.Protos.V1;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>A request as the engine thread sees it: its cache, sampler, last token and the channel its events go to.</summary>
internal sealed class Sequence(GenerationRequest request, Sampler sampler, CancellationToken cancel)
{
    public GenerationRequest Request { get; } = request;
    public Sampler Sampler { get; } = sampler;
    public CancellationToken Cancel { get; } = cancel;
    public Channel<TokenEvent> Events { get; } = Channel.CreateUnbounded<TokenEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });
    public ILatentCache? Cache { get; set; }
    public int Generated { get; set; }
    public int LastToken { get; set; }
    public CancellationTokenRegistration Registration { get; set; }

    public bool IsStop(int token)
    {
        foreach (int s in Request.StopIds) if (s == token) return true;
        return false;
    }
}
