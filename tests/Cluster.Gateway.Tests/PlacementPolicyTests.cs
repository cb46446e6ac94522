using Cluster.Gateway.Nodes;
using Cluster.Gateway.Nodes.Policies;
using Cluster.Protos.V1;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Cluster.Gateway.Tests;

using AttentionNode = Cluster.Gateway.Nodes.AttentionNode;

/// <summary>
/// Each role's placement policy on nodes whose statistics and ledger are set by hand, on a fake clock: what each
/// ranks by, what it skips, and that a node which refused a connection comes last for two seconds, not longer.
/// </summary>
public sealed class PlacementPolicyTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly List<AttentionNode> _nodes = [];

    private static IOptions<AdmissionOptions> Limit(int perNode) => Options.Create(new AdmissionOptions { MaxInFlightPerNode = perNode });

    // 16-token blocks; nothing listens on port 1, and nothing here calls a node.
    private AttentionNode Node(NodeRole role, uint blocks)
    {
        var node = new AttentionNode($"127.0.0.{_nodes.Count + 1}:1", role, _time);
        node.Observe(new AttentionStats { Role = role, BlockSize = 16, BlocksTotal = blocks });
        _nodes.Add(node);
        return node;
    }

    private static AdmissionRequest Request(int promptTokens, int maxTokens) =>
        new([.. Enumerable.Range(0, promptTokens).Select(i => (uint)i)], maxTokens);

    [Fact]
    public void Decode_takes_the_node_with_most_free_blocks_and_skips_one_without_room()
    {
        AttentionNode small = Node(NodeRole.Decode, 10), large = Node(NodeRole.Decode, 20);
        var policy = new DecodePolicy(Limit(8));
        Assert.Same(large, policy.Pick([small, large], Request(16, 16), null, 0));
        large.Reserve(15);
        Assert.Same(small, policy.Pick([small, large], Request(16, 16), null, 0));
        // 9 blocks: only the small node's ten hold them, and the large one has five left.
        Assert.Same(small, policy.Pick([small, large], Request(16, 128), null, 0));
        Assert.Null(policy.Pick([small, large], Request(16, 160), null, 0));
        Assert.Null(policy.Pick([small, large], Request(16, 16), new HashSet<AttentionNode> { small, large }, 0));
    }

    [Fact]
    public void Both_ranks_by_prefill_work_then_requests_and_holds_the_per_node_limit()
    {
        AttentionNode a = Node(NodeRole.Both, 100), b = Node(NodeRole.Both, 100);
        var policy = new BothPolicy(Limit(1));
        a.AddPendingPrompt(500);
        Assert.Same(b, policy.Pick([a, b], Request(16, 16), null, 0));
        b.Reserve(2);
        Assert.Same(a, policy.Pick([a, b], Request(16, 16), null, 0));
        a.Reserve(2);
        Assert.Null(policy.Pick([a, b], Request(16, 16), null, 0));
    }

    [Fact]
    public void Prefill_skips_a_node_whose_whole_cache_cannot_hold_the_prompt()
    {
        AttentionNode tiny = Node(NodeRole.Prefill, 1), big = Node(NodeRole.Prefill, 100);
        var policy = new PrefillPolicy();
        big.AddPendingPrompt(1000);
        Assert.Same(tiny, policy.Pick([tiny, big], Request(16, 4096), null, 0));
        Assert.Same(big, policy.Pick([tiny, big], Request(17, 0), null, 0));
    }

    [Fact]
    public void Equal_nodes_take_turns()
    {
        AttentionNode a = Node(NodeRole.Both, 100), b = Node(NodeRole.Both, 100), c = Node(NodeRole.Both, 100);
        var policy = new BothPolicy(Limit(8));
        AttentionNode[] pool = [a, b, c];
        Assert.Equal([a, b, c, a], [.. Enumerable.Range(0, 4).Select(turn => policy.Pick(pool, Request(16, 16), null, turn)!)]);
    }

    [Fact]
    public void A_node_that_refused_a_connection_comes_last_for_two_seconds_of_the_gateways_clock()
    {
        AttentionNode cheap = Node(NodeRole.Both, 100), busy = Node(NodeRole.Both, 100);
        busy.AddPendingPrompt(1000);
        var policy = new BothPolicy(Limit(8));
        cheap.MarkDown();
        Assert.Same(busy, policy.Pick([cheap, busy], Request(16, 16), null, 0));
        _time.Advance(TimeSpan.FromMilliseconds(1999));
        Assert.True(cheap.RecentlyDown);
        Assert.Same(busy, policy.Pick([cheap, busy], Request(16, 16), null, 0));
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.False(cheap.RecentlyDown);
        Assert.Same(cheap, policy.Pick([cheap, busy], Request(16, 16), null, 0));
    }

    [Fact]
    public void Admission_needs_a_policy_for_every_role()
    {
        var e = Assert.Throws<ArgumentException>(() => new Admission(Limit(1), [new BothPolicy(Limit(1)), new PrefillPolicy()]));
        Assert.Contains("decode", e.Message);
    }

    public void Dispose()
    {
        foreach (AttentionNode node in _nodes) node.Dispose();
    }
}
