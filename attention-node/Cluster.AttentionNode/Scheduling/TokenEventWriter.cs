using System.Threading.Channels;
using Cluster.Protos.V1;

namespace Cluster.AttentionNode.Scheduling;

/// <summary>
/// A generation's output: its token events as the engine thread samples them, then the end, which a failure or
/// cancellation ends with its exception (what the request's reader sees).
/// </summary>
internal sealed class TokenEventWriter
{
    // Several writers: the engine thread, and the cancellation callback that ends the stream at once.
    private readonly Channel<TokenEvent> _events = Channel.CreateUnbounded<TokenEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });

    public ChannelReader<TokenEvent> Reader => _events.Reader;

    public void Write(TokenEvent ev) => _events.Writer.TryWrite(ev);

    public void Complete(Exception? error) => _events.Writer.TryComplete(error);
}
