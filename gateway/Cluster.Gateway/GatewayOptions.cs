using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Cluster.Gateway;

/// <summary>Settings of one gateway process (see <c>cluster serve gateway</c>).</summary>
public sealed record GatewayOptions
{
    /// <summary>Directory with config.json, tokenizer.json and tokenizer_config.json.</summary>
    public required string ModelDir { get; init; }
    /// <summary>
    /// gRPC endpoints ("host:port" or a full http(s):// address) of attention nodes of role both, which serve a
    /// request whole.
    /// </summary>
    public IReadOnlyList<string> AttentionNodes { get; init; } = [];
    /// <summary>Nodes of role prefill: they run prompts for the decode nodes.</summary>
    public IReadOnlyList<string> PrefillNodes { get; init; } = [];
    /// <summary>Nodes of role decode: they generate, pulling each prompt's cache from the prefill node the gateway names.</summary>
    public IReadOnlyList<string> DecodeNodes { get; init; } = [];
    /// <summary>
    /// Where to find the attention nodes as they come and go (Consul, DNS) instead of the three fixed lists above;
    /// null: the lists.
    /// </summary>
    public GatewayDiscovery? Discovery { get; init; }
    public IPAddress Host { get; init; } = IPAddress.Loopback;
    /// <summary>The OpenAI-compatible HTTP port; 0 picks a free one.</summary>
    public int HttpPort { get; init; }
    /// <summary>The cluster.v1.Inference gRPC port (cleartext HTTP/2); 0 picks a free one.</summary>
    public int GrpcPort { get; init; }
    public string NodeId { get; init; } = "gateway";
    /// <summary>How often a supervisor (<c>cluster up</c>) has restarted this gateway; reported by GET /cluster/status.</summary>
    public int Restarts { get; init; }
    /// <summary>The id clients name the model by; null: the model directory's name.</summary>
    public string? ModelId { get; init; }
    /// <summary>Requests in flight per generating node (running + queued there) before new ones wait in the gateway's queue.</summary>
    public int MaxQueue { get; init; } = 256;
    /// <summary>Requests waiting in the gateway for room on a node before new ones get 429.</summary>
    public int MaxQueuedRequests { get; init; } = 1024;
    /// <summary>How many times one request may move to another node when the one serving it is lost mid-stream (0..16).</summary>
    public int MaxMigrations { get; init; } = 2;
    /// <summary>
    /// The completion budget of a chat or gRPC request that gives none, capped by what the context leaves (DeepSeek's
    /// API default). Admission reserves cache for prompt + budget, so a whole-context default would admit one
    /// request per node.
    /// </summary>
    public int DefaultMaxTokens { get; init; } = 4096;
    /// <summary>Longest prompt + completion in tokens; null: the model's max_position_embeddings.</summary>
    public int? MaxModelLen { get; init; }
    /// <summary>Largest HTTP request body accepted (413 beyond).</summary>
    public long MaxRequestBodyBytes { get; init; } = 8 << 20;
    /// <summary>With a certificate the HTTP port speaks TLS with HTTP/1.1 and h2; without, plain HTTP/1.1.</summary>
    public X509Certificate2? Certificate { get; init; }
    /// <summary>The keys clients must present, with their limits; none: the APIs are open (a warning at start).</summary>
    public Security.ApiKeys ApiKeys { get; init; } = Security.ApiKeys.None;
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Warning;
    /// <summary>The cluster's credential: put on the gateway's calls to attention and expert nodes, and required of callers of its Control service (the public Inference API checks API keys instead); null: none.</summary>
    public Cluster.Transport.ClusterToken? ClusterToken { get; init; }
    /// <summary>How long /readyz, /cluster/status and the statistics refresh wait for each node's answer.</summary>
    public TimeSpan HealthTimeout { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>How often every node's statistics (cache blocks, role) are refreshed.</summary>
    public TimeSpan StatsInterval { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>
    /// At shutdown, how long requests in flight may take to finish: Kestrel stops accepting connections (HTTP/2 gets
    /// GOAWAY, HTTP/1.1 "Connection: close") and waits for them up to this long, then aborts the rest.
    /// </summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>The automatic rebalance of the expert placement (`--rebalance-interval`); null: only on command.</summary>
    public Cluster.ExpertNode.Control.RebalanceSchedule? Rebalance { get; init; }

    /// <summary>
    /// Throws ArgumentException naming the first setting of the nodes or the model that cannot work; the settings
    /// bound to options objects (<see cref="Nodes.AdmissionOptions"/>, <see cref="Nodes.NodeProbeOptions"/>) are checked
    /// by their own validation when the gateway starts.
    /// </summary>
    public void Validate()
    {
        if (Discovery is { } discovery) ValidateDiscovery(discovery);
        else ValidateLists();
        if (DefaultMaxTokens < 1) throw new ArgumentException($"default max tokens must be at least 1 (got {DefaultMaxTokens})");
        Rebalance?.Validate();
    }

    private void ValidateLists()
    {
        int both = AttentionNodes.Count, prefill = PrefillNodes.Count, decode = DecodeNodes.Count;
        if (both == 0 && (prefill == 0 || decode == 0))
            throw new ArgumentException("at least one attention node, or at least one prefill node and one decode node, is needed "
                + $"(got {both} attention, {prefill} prefill, {decode} decode)");
        if ((prefill == 0) != (decode == 0))
            throw new ArgumentException(prefill == 0 ? "decode nodes need at least one prefill node" : "prefill nodes need at least one decode node");
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (string endpoint in (IEnumerable<string>)[.. AttentionNodes, .. PrefillNodes, .. DecodeNodes])
        {
            if (!seen.Add(endpoint)) throw new ArgumentException($"attention node '{endpoint}' is listed more than once");
            if (!Transport.PeerAddress.TryParse(endpoint, out _)) throw new ArgumentException($"attention node '{endpoint}' is not host:port");
        }
    }

    private void ValidateDiscovery(GatewayDiscovery discovery)
    {
        if (AttentionNodes.Count + PrefillNodes.Count + DecodeNodes.Count > 0)
            throw new ArgumentException("attention nodes come from discovery or from the node lists, not both");
        if (discovery.Attention is null && (discovery.Prefill is null || discovery.Decode is null))
            throw new ArgumentException("discovery needs a source of attention nodes, or one of prefill nodes and one of decode nodes");
        if ((discovery.Prefill is null) != (discovery.Decode is null))
            throw new ArgumentException(discovery.Prefill is null ? "a source of decode nodes needs one of prefill nodes" : "a source of prefill nodes needs one of decode nodes");
    }
}
