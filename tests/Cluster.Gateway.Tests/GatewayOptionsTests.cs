namespace Cluster.Gateway.Tests;

public sealed class GatewayOptionsTests
{
    private static GatewayOptions Options => ClusterFixture.Options([]);

    [Fact]
    public void Attention_nodes_or_prefill_and_decode_nodes_are_needed()
    {
        Assert.Contains("got 0 attention, 0 prefill, 0 decode", Assert.Throws<ArgumentException>(() => Options.Validate()).Message);
        Assert.Contains("prefill", Assert.Throws<ArgumentException>(() => (Options with { PrefillNodes = ["a:1"] }).Validate()).Message);
        Assert.Contains("prefill node", Assert.Throws<ArgumentException>(() => (Options with { AttentionNodes = ["a:1"], DecodeNodes = ["b:1"] }).Validate()).Message);
        Assert.Contains("'a:1' is listed more than once",
            Assert.Throws<ArgumentException>(() => (Options with { PrefillNodes = ["a:1"], DecodeNodes = ["a:1"] }).Validate()).Message);
        Assert.Contains("default max tokens", Assert.Throws<ArgumentException>(() => (Options with { AttentionNodes = ["a:1"], DefaultMaxTokens = 0 }).Validate()).Message);

        (Options with { AttentionNodes = ["a:1"] }).Validate();
        (Options with { PrefillNodes = ["a:1"], DecodeNodes = ["b:1"] }).Validate();
        (Options with { AttentionNodes = ["c:1"], PrefillNodes = ["a:1"], DecodeNodes = ["b:1"], MaxQueuedRequests = 0 }).Validate();
    }
}
