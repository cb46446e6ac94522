using Cluster.Transport;
using Grpc.Core;

namespace Cluster.AttentionNode.Transfer;

/// <summary>
/// One channel per prefill node a decode node has called, opened on first use and kept for the node's life.
/// A KV transfer is never retried (its stream cannot be resumed), and a dead peer should fail fast, hence a
/// short connect timeout and no unary resilience. The calls carry the cluster's token when it has one.
/// </summary>
internal sealed class PrefillPeers(ClusterToken? token) : IDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(3);
    private readonly PeerChannels _channels = new(new GrpcClientOptions { ConnectTimeout = ConnectTimeout, Resilience = null, ClusterToken = token });
    private readonly CancellationTokenSource _closing = new();

    /// <summary>Fires when the node shuts down: closing a channel does not end the calls in flight on it.</summary>
    public CancellationToken Closing => _closing.Token;

    /// <summary>The channel to "host:port" (or an http:// or https:// address); INVALID_ARGUMENT naming prefill_node otherwise.</summary>
    public PeerChannel For(string endpoint)
    {
        if (!PeerAddress.TryParse(endpoint, out _))
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"prefill_node: '{endpoint}' is not host:port"));
        return _channels.For(endpoint);
    }

    public void Dispose()
    {
        _closing.Cancel();
        _channels.Dispose();
    }
}
