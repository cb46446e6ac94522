using System.Threading.Channels;
using Cluster.Engine.Cache;
using Cluster.Protos.V1;

namespace Cluster.AttentionNode.Transfer;

/// <summary>
/// A Prefill call's output in the order the decode side checks it: the header, the rows of the reused prefix, each
/// chunk's rows layer by layer as the engine computes them, then KvDone with the first token (its checksum left for
/// the sender, which sees every slice as it writes them out), then the end, which a failure or cancellation ends with
/// its exception.
/// </summary>
internal sealed class KvSliceWriter
{
    // Several writers: the submitting thread (header and prefix), the engine thread, and the cancellation callback.
    private readonly Channel<KvTransfer> _parts = Channel.CreateUnbounded<KvTransfer>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });

    public ChannelReader<KvTransfer> Reader => _parts.Reader;

    public void WriteHeader(LatentCacheManager caches, int promptTokens, int cachedPromptTokens) => _parts.Writer.TryWrite(new KvTransfer
    {
        Header = new KvHeader
        {
            Layers = (uint)caches.Layers, RowSize = (uint)caches.RowSize, Dtype = caches.Format.Name(),
            PromptTokens = (uint)promptTokens, CachedPromptTokens = (uint)cachedPromptTokens,
        },
    });

    /// <summary>Rows [start, start + count) of <paramref name="layer"/>, cut into slices.</summary>
    public void WriteRows(PagedLatentCache cache, int layer, int start, int count) => KvSlices.Send(cache, layer, start, count, _parts.Writer);

    public void WriteDone(TokenEvent first) => _parts.Writer.TryWrite(new KvTransfer { Done = new KvDone { First = first } });

    public void Complete(Exception? error) => _parts.Writer.TryComplete(error);
}
